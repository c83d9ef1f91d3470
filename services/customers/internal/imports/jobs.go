// Package imports runs bulk imports of customers as jobs. An upload is
// spooled into PostgreSQL first (so a job survives a restart of the
// service and any instance can run it), then applied in batches, each row
// through the same use case as POST /v1/customers (customer.ImportRow), so
// there is one set of rules. Every batch commits its rows, their events,
// their row errors and the job's checkpoint together: a job resumed after
// a crash goes on after the last committed row and applies no row twice.
package imports

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/events"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// Config tunes imports.
type Config struct {
	// MaxBytes bounds an uploaded file.
	MaxBytes int64 `env:"IMPORT_MAX_BYTES" envDefault:"2147483648"`
	// Lease is how long a job may go without a committed batch before
	// another instance takes it over (its instance died).
	Lease time.Duration `env:"IMPORT_LEASE" envDefault:"1m"`
}

// Job statuses.
const (
	StatusReceiving = "receiving"
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// What to do with a row that fails.
const (
	// SkipRows applies every other row and lists the failed ones.
	SkipRows = "skip_rows"
	// RejectAll writes nothing if any row fails.
	RejectAll = "reject_all"
)

// ErrNotFound means no import job has the id.
var ErrNotFound = errors.New("import job not found")

const (
	chunkBytes = 1 << 20 // the spool's unit
	// batchRows is how many rows commit together. Each row that goes alone
	// runs in a savepoint of the batch's transaction; PostgreSQL keeps up to
	// 64 subtransactions per transaction in shared memory before it slows
	// every other session's snapshots, so a batch of such rows stays below
	// that.
	batchRows = 50
	// createBatchRows is the batch of mode create, whose rows are written
	// together (one savepoint for them all); only rows that join groups or
	// ask for an email, and every row after a concurrent writer took an
	// email, go alone.
	createBatchRows = 1000
)

// Options are how a file is imported.
type Options struct {
	Format  string // FormatCSV or FormatNDJSON
	Mode    string // customer.ImportCreate or customer.ImportUpsert
	DryRun  bool
	OnError string // SkipRows or RejectAll
}

// Job is an import job as the API shows it.
type Job struct {
	ID         uuid.UUID  `json:"id"`
	Status     string     `json:"status"`
	Format     string     `json:"format"`
	Mode       string     `json:"mode"`
	DryRun     bool       `json:"dry_run"`
	OnError    string     `json:"on_error"`
	SizeBytes  int64      `json:"size_bytes"`
	Rows       JobRows    `json:"rows"`
	Error      string     `json:"error,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// DurationMS is how long it has run, or ran.
	DurationMS *int64 `json:"duration_ms"`
}

// JobRows counts a job's rows. In a dry run, created and updated are what
// the import would do.
type JobRows struct {
	Read    int64 `json:"read"`
	Created int64 `json:"created"`
	Updated int64 `json:"updated"`
	Failed  int64 `json:"failed"`
}

// RowProblem is one error of a failed row.
type RowProblem struct {
	Row     int64  `json:"row"`
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// UseCases gives the customer use cases in a transaction of the job's.
type UseCases func(tx pgx.Tx) *customer.Service

// Jobs starts, runs and reports import jobs.
type Jobs struct {
	pool     *pgxpool.Pool
	q        *gen.Queries
	useCases UseCases
	log      *zap.Logger
	cfg      Config
	wake     chan struct{}
}

// New returns Jobs.
func New(pool *pgxpool.Pool, log *zap.Logger, cfg Config, useCases UseCases) *Jobs {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 2 << 30
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	return &Jobs{pool: pool, q: gen.New(pool), useCases: useCases, log: log.Named("imports"), cfg: cfg, wake: make(chan struct{}, 1)}
}

// Start validates the options, spools the file and queues the job. The
// file is read as a stream, a chunk at a time. A file whose header (or
// first line) cannot be read is refused at once, and nothing is kept.
func (j *Jobs) Start(ctx context.Context, o customer.Origin, opt Options, body io.Reader) (Job, error) {
	if err := opt.validate(); err != nil {
		return Job{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Job{}, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := j.q.InsertImportJob(ctx, gen.InsertImportJobParams{
		ID: id, Format: opt.Format, Mode: opt.Mode, DryRun: opt.DryRun, OnError: opt.OnError,
		ActorType: o.Actor.Type, ActorID: o.Actor.ID, ActorName: o.ActorName, TraceParent: o.TraceParent, CreatedAt: now,
	}); err != nil {
		return Job{}, fmt.Errorf("imports: start: %w", err)
	}
	size, err := j.spool(ctx, id, opt.Format, body)
	if err != nil {
		// Nothing of a refused upload is kept; the context may be gone.
		if derr := j.q.DeleteImportJob(context.WithoutCancel(ctx), id); derr != nil {
			j.log.Warn("imports: delete refused upload", zap.Stringer("job", id), zap.Error(derr))
		}
		return Job{}, err
	}
	if err := j.q.QueueImportJob(ctx, gen.QueueImportJobParams{ID: id, SizeBytes: size}); err != nil {
		return Job{}, fmt.Errorf("imports: queue: %w", err)
	}
	select {
	case j.wake <- struct{}{}:
	default:
	}
	return j.Get(ctx, id)
}

func (opt Options) validate() error {
	var errs []customer.FieldError
	if opt.Mode != customer.ImportCreate && opt.Mode != customer.ImportUpsert {
		errs = append(errs, customer.FieldError{Field: "mode", Code: customer.CodeInvalid, Message: "mode must be create or upsert"})
	}
	if opt.OnError != SkipRows && opt.OnError != RejectAll {
		errs = append(errs, customer.FieldError{Field: "on_error", Code: customer.CodeInvalid, Message: "on_error must be skip_rows or reject_all"})
	}
	if opt.Format != FormatCSV && opt.Format != FormatNDJSON {
		errs = append(errs, customer.FieldError{Field: "Content-Type", Code: customer.CodeInvalid, Message: "the file must be text/csv or application/x-ndjson"})
	}
	if errs != nil {
		return &customer.ValidationError{Errors: errs}
	}
	return nil
}

// spool stores the body in chunks; the first is checked before anything
// else is read, so a file of the wrong shape is refused at once.
func (j *Jobs) spool(ctx context.Context, id uuid.UUID, format string, body io.Reader) (int64, error) {
	buf := make([]byte, chunkBytes)
	var size int64
	for seq := int32(0); ; seq++ {
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			if size += int64(n); size > j.cfg.MaxBytes {
				return 0, problem.Input(http.StatusRequestEntityTooLarge, "", problem.CodeTooLarge, "the file must be at most %d bytes (IMPORT_MAX_BYTES)", j.cfg.MaxBytes)
			}
			if seq == 0 {
				if err := checkStart(format, buf[:n], n < len(buf)); err != nil {
					return 0, err
				}
			}
			if err := j.q.InsertImportChunk(ctx, gen.InsertImportChunkParams{JobID: id, Seq: seq, Data: buf[:n]}); err != nil {
				return 0, fmt.Errorf("imports: spool: %w", err)
			}
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			if size == 0 {
				return 0, fileProblem(&FileError{Code: CodeEmptyFile, Message: "the file is empty"})
			}
			return size, nil
		case err != nil:
			return 0, problem.BodyError(err, j.cfg.MaxBytes)
		}
	}
}

// checkStart reads the start of a file: a CSV header must name known
// columns once each; an NDJSON file's first line must be read.
func checkStart(format string, start []byte, whole bool) error {
	rs, err := newRows(format, bytes.NewReader(start))
	if err == nil && (format == FormatNDJSON || whole) {
		_, _, err = rs.next()
		var rowErr *RowError
		if errors.Is(err, io.EOF) || errors.As(err, &rowErr) {
			err = nil // row errors are the job's to report
		}
		if fe := (*FileError)(nil); errors.As(err, &fe) && fe.Code == CodeRowTooLarge && !whole {
			err = nil // the first line goes on in the next chunk
		}
	}
	var fe *FileError
	if errors.As(err, &fe) {
		return fileProblem(fe)
	}
	return err
}

// fileProblem is a file's problem as a 400 naming its row and column.
func fileProblem(fe *FileError) error {
	field := fe.Column
	if fe.Row > 0 {
		field = fmt.Sprintf("row %d", fe.Row)
		if fe.Column != "" {
			field += ", column " + fe.Column
		}
	}
	return customer.FieldErr(field, fe.Code, "%s", fe.Message)
}

// Get reads a job.
func (j *Jobs) Get(ctx context.Context, id uuid.UUID) (Job, error) {
	row, err := j.q.GetImportJob(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, ErrNotFound
	}
	if err != nil {
		return Job{}, fmt.Errorf("imports: read job: %w", err)
	}
	return jobOf(row), nil
}

func jobOf(r gen.ImportJob) Job {
	job := Job{
		ID: r.ID, Status: r.Status, Format: r.Format, Mode: r.Mode, DryRun: r.DryRun, OnError: r.OnError,
		SizeBytes: r.SizeBytes, Error: r.Error, CreatedAt: r.CreatedAt.UTC(), StartedAt: utc(r.StartedAt), FinishedAt: utc(r.FinishedAt),
		Rows: JobRows{Read: r.RowsDone, Created: r.RowsCreated, Updated: r.RowsUpdated, Failed: r.RowsFailed},
	}
	if job.StartedAt != nil {
		end := time.Now()
		if job.FinishedAt != nil {
			end = *job.FinishedAt
		}
		ms := end.Sub(*job.StartedAt).Milliseconds()
		job.DurationMS = &ms
	}
	return job
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Errors hands each error of the job's failed rows to each, in row order.
func (j *Jobs) Errors(ctx context.Context, id uuid.UUID, each func(RowProblem) error) error {
	if _, err := j.Get(ctx, id); err != nil {
		return err
	}
	var afterRow int64
	var afterSeq int32 = -1
	for {
		page, err := j.q.ListImportErrors(ctx, gen.ListImportErrorsParams{JobID: id, AfterRow: afterRow, AfterSeq: afterSeq, Limit: 1000})
		if err != nil {
			return fmt.Errorf("imports: read errors: %w", err)
		}
		for _, e := range page {
			if err := each(RowProblem{Row: e.RowNum, Field: e.Field, Code: e.Code, Message: e.Message}); err != nil {
				return err
			}
		}
		if len(page) < 1000 {
			return nil
		}
		// The page's last error: ListImportErrors orders by (row, seq).
		last := page[len(page)-1]
		afterRow, afterSeq = last.RowNum, last.Seq
	}
}

// origin is who started the job: the actor of its events, which name the
// job as their cause.
func origin(r gen.ImportJob) customer.Origin {
	return customer.Origin{
		Actor: events.Actor{Type: r.ActorType, ID: r.ActorID}, ActorName: r.ActorName,
		TraceParent: r.TraceParent, CausationID: r.ID.String(),
	}
}
