package httpapi

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/services/customers/internal/auth"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/imports"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// importRoute takes a file of any size: its body is streamed into the job's
// spool, never buffered, so the Idempotency-Key replay (which keeps a
// request's body to compare) does not apply to it; the job's Location is
// the handle a client polls instead.
const importRoute = "POST /v1/customers/import"

// startImport spools the file and answers 202 with the job to poll.
func (a *API) startImport(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	opt := imports.Options{Mode: customer.ImportCreate, OnError: imports.SkipRows}
	switch mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt {
	case "text/csv":
		opt.Format = imports.FormatCSV
	case "application/x-ndjson", "application/ndjson":
		opt.Format = imports.FormatNDJSON
	default:
		return problem.Input(http.StatusUnsupportedMediaType, "Content-Type", problem.CodeMediaType,
			"the file must be text/csv or application/x-ndjson")
	}
	qs := r.URL.Query()
	for k, v := range qs {
		switch k {
		case "mode":
			opt.Mode = v[0]
		case "on_error":
			opt.OnError = v[0]
		case "dry_run":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return problem.Input(http.StatusBadRequest, k, customer.CodeInvalid, "dry_run must be true or false")
			}
			opt.DryRun = b
		default:
			return problem.Input(http.StatusBadRequest, k, problem.CodeUnknownField, "%s is not a known query parameter", k)
		}
	}
	// A big file takes longer to send than the server's read timeout.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	job, err := a.imports.Start(r.Context(), origin(r, p), opt, r.Body)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/import-jobs/"+job.ID.String())
	writeJSON(w, http.StatusAccepted, job)
	return nil
}

func importJobID(r *http.Request) (uuid.UUID, error) {
	return pathUUID(r, "id", errImportJobNotFound)
}

var errImportJobNotFound = problem.Input(http.StatusNotFound, "id", customer.CodeNotFound, "no import job has this id")

// importProblem names an unknown job as such.
func importProblem(err error) error {
	if errors.Is(err, imports.ErrNotFound) {
		return errImportJobNotFound
	}
	return err
}

func (a *API) getImportJob(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	id, err := importJobID(r)
	if err != nil {
		return err
	}
	job, err := a.imports.Get(r.Context(), id)
	if err != nil {
		return importProblem(err)
	}
	writeJSON(w, http.StatusOK, job)
	return nil
}

// listImportErrors streams a job's row errors as NDJSON, in row order.
func (a *API) listImportErrors(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	id, err := importJobID(r)
	if err != nil {
		return err
	}
	if _, err := a.imports.Get(r.Context(), id); err != nil {
		return importProblem(err)
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	err = a.imports.Errors(r.Context(), id, func(e imports.RowProblem) error { return enc.Encode(e) })
	if err != nil {
		// The answer has begun: all that is left is to cut it.
		a.log.Warn("import errors: answer cut", zap.Stringer("job", id), zap.Error(err))
	}
	return nil
}
