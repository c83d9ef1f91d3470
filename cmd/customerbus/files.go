package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// apiClient talks to a running command service, as the import and export
// commands do: they need its URL and a token, not the database.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// newAPIClient reads CUSTOMERBUS_URL (default the API of `make run`) and
// CUSTOMERBUS_TOKEN.
func newAPIClient() (*apiClient, error) {
	base := os.Getenv("CUSTOMERBUS_URL")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	token := os.Getenv("CUSTOMERBUS_TOKEN")
	if token == "" {
		return nil, errors.New("CUSTOMERBUS_TOKEN is required: a token with MANAGE_USERS (make run prints one; or customerbus token create)")
	}
	return &apiClient{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{}}, nil
}

func (c *apiClient) do(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return c.http.Do(req)
}

// problemOf reads an error answer as the API's problem details.
func problemOf(resp *http.Response) error {
	defer resp.Body.Close()
	var p struct {
		Title  string `json:"title"`
		Errors []struct{ Field, Code, Message string }
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(raw, &p) != nil || len(p.Errors) == 0 {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(raw)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s:", resp.Status)
	for _, e := range p.Errors {
		fmt.Fprintf(&b, " %s (%s on %q)", e.Message, e.Code, e.Field)
	}
	return errors.New(b.String())
}

// importJob is the API's import job, as far as the command shows it.
type importJob struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Rows   struct {
		Read, Created, Updated, Failed int64
	} `json:"rows"`
	Error      string `json:"error"`
	DurationMS *int64 `json:"duration_ms"`
}

// errFailedRows makes the command exit non-zero when rows failed.
var errFailedRows = errors.New("rows failed")

// importCommand uploads a file with a progress bar, follows its job with
// another (rows and rows/s), and prints a summary and the first errors.
func importCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", "create", "create, or upsert (match by external_reference, then email; change the given fields)")
	dryRun := fs.Bool("dry-run", false, "check every row and write nothing")
	onError := fs.String("on-error", "skip_rows", "skip_rows, or reject_all (nothing is written if a row fails)")
	format := fs.String("format", "", "csv or ndjson (default: from the file's extension)")
	quiet := fs.Bool("quiet", false, "no progress bars")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: customerbus import FILE [-mode upsert] [-dry-run] [-on-error reject_all] [-format csv|ndjson]")
	}
	path := fs.Arg(0)
	contentType, err := fileType(path, *format)
	if err != nil {
		return err
	}
	c, err := newAPIClient()
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	upload := progressbar.NewOptions64(info.Size(), barOptions(stderr, *quiet, "uploading", true)...)
	body := progressbar.NewReader(f, upload)
	q := url.Values{"mode": {*mode}, "on_error": {*onError}, "dry_run": {fmt.Sprint(*dryRun)}}
	resp, err := c.do(ctx, http.MethodPost, "/v1/customers/import?"+q.Encode(), contentType, &body)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	_ = upload.Finish()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("import refused: %w", problemOf(resp))
	}
	var job importJob
	err = json.NewDecoder(resp.Body).Decode(&job)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("import: the answer: %w", err)
	}
	job, err = c.follow(ctx, job.ID, stderr, *quiet)
	if err != nil {
		return err
	}
	return c.summarise(ctx, job, *dryRun, stderr)
}

// fileType is the content type of an import file.
func fileType(path, format string) (string, error) {
	if format == "" {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".csv":
			format = "csv"
		case ".ndjson", ".jsonl":
			format = "ndjson"
		}
	}
	switch format {
	case "csv":
		return "text/csv", nil
	case "ndjson":
		return "application/x-ndjson", nil
	}
	return "", fmt.Errorf("import: say -format csv or -format ndjson for %s", path)
}

func barOptions(w io.Writer, quiet bool, what string, bytes bool) []progressbar.Option {
	if quiet {
		w = io.Discard
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(), progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	}
	if bytes {
		return append(opts, progressbar.OptionShowBytes(true))
	}
	return append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"))
}

// follow polls the job until it ends, with its rows as progress.
func (c *apiClient) follow(ctx context.Context, id string, stderr io.Writer, quiet bool) (importJob, error) {
	bar := progressbar.NewOptions64(-1, barOptions(stderr, quiet, "importing", false)...)
	defer func() { _ = bar.Finish() }()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := c.do(ctx, http.MethodGet, "/v1/import-jobs/"+id, "", nil)
		if err != nil {
			return importJob{}, err
		}
		if resp.StatusCode != http.StatusOK {
			return importJob{}, problemOf(resp)
		}
		var job importJob
		err = json.NewDecoder(resp.Body).Decode(&job)
		resp.Body.Close()
		if err != nil {
			return importJob{}, err
		}
		_ = bar.Set64(job.Rows.Read)
		if job.Status == "succeeded" || job.Status == "failed" {
			return job, nil
		}
		select {
		case <-ctx.Done():
			return job, fmt.Errorf("import %s goes on in the service; follow it at /v1/import-jobs/%s: %w", id, id, ctx.Err())
		case <-tick.C:
		}
	}
}

// maxShownErrors is how many row errors the summary prints.
const maxShownErrors = 20

func (c *apiClient) summarise(ctx context.Context, job importJob, dryRun bool, stderr io.Writer) error {
	verb := "created"
	if dryRun {
		verb = "would create"
	}
	took := ""
	if job.DurationMS != nil {
		took = fmt.Sprintf(" in %s", time.Duration(*job.DurationMS)*time.Millisecond)
	}
	fmt.Fprintf(stderr, "import %s %s%s: %d rows read, %s %d, updated %d, failed %d\n",
		job.ID, job.Status, took, job.Rows.Read, verb, job.Rows.Created, job.Rows.Updated, job.Rows.Failed)
	if job.Error != "" {
		fmt.Fprintln(stderr, "  "+job.Error)
	}
	if job.Rows.Failed > 0 {
		resp, err := c.do(ctx, http.MethodGet, "/v1/import-jobs/"+job.ID+"/errors", "", nil)
		if err == nil && resp.StatusCode == http.StatusOK {
			sc := bufio.NewScanner(resp.Body)
			for n := 0; sc.Scan() && n < maxShownErrors; n++ {
				var e struct {
					Row                  int64
					Field, Code, Message string
				}
				if json.Unmarshal(sc.Bytes(), &e) == nil {
					fmt.Fprintf(stderr, "  row %d: %s: %s (%s)\n", e.Row, e.Field, e.Message, e.Code)
				}
			}
			resp.Body.Close()
		}
		if job.Rows.Failed > maxShownErrors {
			fmt.Fprintf(stderr, "  … all errors: GET %s/v1/import-jobs/%s/errors\n", c.base, job.ID)
		}
	}
	if job.Status != "succeeded" || job.Rows.Failed > 0 {
		return errFailedRows
	}
	return nil
}

// exportCommand streams an export to stdout, with its progress on stderr,
// and fails unless the service marked the file complete.
func exportCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "ndjson", "ndjson or csv")
	fields := fs.String("fields", "", "comma-separated fields (default: those an import takes)")
	include := fs.String("include", "", "private_metadata, addresses (comma-separated)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return err
	}
	q := url.Values{"format": {*format}}
	if *fields != "" {
		q.Set("fields", *fields)
	}
	if *include != "" {
		q.Set("include", *include)
	}
	for _, filter := range fs.Args() { // the list's filters, as key=value
		k, v, ok := strings.Cut(filter, "=")
		if !ok {
			return fmt.Errorf("export: filter %q is not key=value (e.g. is_active=true, q=ann, metadata[tier]=gold)", filter)
		}
		q.Add(k, v)
	}
	c, err := newAPIClient()
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/customers/export?"+q.Encode(), "", nil)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("export refused: %w", problemOf(resp))
	}
	defer resp.Body.Close()
	bar := progressbar.NewOptions64(-1, barOptions(stderr, *quiet, "exporting", true)...)
	if _, err := io.Copy(io.MultiWriter(stdout, bar), resp.Body); err != nil {
		return fmt.Errorf("export cut short: %w", err)
	}
	_ = bar.Finish()
	if resp.Trailer.Get("X-Export-Complete") != "true" {
		return errors.New("export cut short: the service did not mark the file complete")
	}
	fmt.Fprintf(stderr, "exported %s customers\n", resp.Trailer.Get("X-Export-Rows"))
	return nil
}
