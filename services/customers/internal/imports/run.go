package imports

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/customerbus/customerbus/db/gen"
	"github.com/customerbus/customerbus/services/customers/internal/customer"
	"github.com/customerbus/customerbus/services/customers/internal/problem"
)

// pollInterval is how often an idle instance looks for a job another
// instance queued (or one whose instance died).
const pollInterval = 2 * time.Second

// Run runs import jobs until ctx ends: the ones this instance queued at
// once, others (queued elsewhere, or left running by an instance that died)
// when it next looks. A job interrupted by ctx goes on, from its last
// committed batch, on whichever instance takes it next.
func (j *Jobs) Run(ctx context.Context) error {
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	for ctx.Err() == nil {
		ran, err := j.runNext(ctx)
		if err != nil && ctx.Err() == nil {
			j.log.Warn("imports: job interrupted; it goes on after its lease", zap.Error(err))
		}
		if ran && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
		case <-j.wake:
		case <-poll.C:
		}
	}
	return nil
}

// runNext claims and runs one job; ran is false when none was waiting.
func (j *Jobs) runNext(ctx context.Context) (ran bool, err error) {
	now := time.Now()
	if _, err := j.q.DeleteStaleUploads(ctx, now.Add(-time.Hour)); err != nil {
		return false, err
	}
	job, err := j.q.ClaimImportJob(ctx, gen.ClaimImportJobParams{LeaseUntil: j.leaseFrom(now), Now: &now})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("imports: claim: %w", err)
	}
	log := j.log.With(zap.Stringer("job", job.ID))
	log.Info("imports: job running", zap.String("mode", job.Mode), zap.Bool("dry_run", job.DryRun),
		zap.String("on_error", job.OnError), zap.Int64("from_row", job.RowsDone))
	status, reason, err := j.run(ctx, job)
	if err != nil {
		return true, err
	}
	// A job that ended keeps its counts and errors; its file goes.
	final, err := j.q.GetImportJob(ctx, job.ID)
	if job.OnError == RejectAll && !job.DryRun && status == StatusFailed {
		final.RowsCreated, final.RowsUpdated = 0, 0 // the first pass's counts: nothing was written
	}
	if err == nil {
		err = j.q.FinishImportJob(ctx, gen.FinishImportJobParams{
			ID: job.ID, Status: status, Error: reason, FinishedAt: ptr(time.Now()),
			RowsDone: final.RowsDone, RowsCreated: final.RowsCreated, RowsUpdated: final.RowsUpdated, RowsFailed: final.RowsFailed,
		})
	}
	if err == nil {
		err = j.q.DeleteImportChunks(ctx, job.ID)
	}
	log.Info("imports: job ended", zap.String("status", status), zap.String("error", reason),
		zap.Int64("created", final.RowsCreated), zap.Int64("updated", final.RowsUpdated), zap.Int64("failed", final.RowsFailed))
	return true, err
}

func (j *Jobs) leaseFrom(t time.Time) *time.Time { return ptr(t.Add(j.cfg.Lease)) }

func ptr[T any](v T) *T { return &v }

// run applies the job's file and says how it ended. An error is ours (the
// database went away, say): the job stays running and is taken up again
// after its lease, from its last committed batch.
func (j *Jobs) run(ctx context.Context, job gen.ImportJob) (status, reason string, err error) {
	switch {
	case job.DryRun:
		// Every row is applied and rolled back: the same checks, nothing kept.
		return j.pass(ctx, job, false)
	case job.OnError == RejectAll:
		// First every row is tried and rolled back; only a file without a
		// failed row is then written, in one transaction. An interrupted
		// job starts over: nothing of it was kept.
		if job.RowsDone > 0 {
			if err := j.restart(ctx, job); err != nil {
				return "", "", err
			}
			job.RowsDone, job.RowsFailed = 0, 0
		}
		status, reason, err := j.pass(ctx, job, false)
		if err != nil || status == StatusFailed {
			return status, reason, err
		}
		if final, err := j.q.GetImportJob(ctx, job.ID); err != nil {
			return "", "", err
		} else if final.RowsFailed > 0 {
			return StatusFailed, fmt.Sprintf("%d rows failed (see the errors); nothing was written", final.RowsFailed), nil
		}
		return j.writeAll(ctx, job)
	default:
		return j.pass(ctx, job, true)
	}
}

func (j *Jobs) restart(ctx context.Context, job gen.ImportJob) error {
	return pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		q := j.q.WithTx(tx)
		if err := q.DeleteImportErrors(ctx, job.ID); err != nil {
			return err
		}
		return q.ResetImportJob(ctx, job.ID)
	})
}

// item is a row of the file, or why it could not be read.
type item struct {
	row customer.ImportRow
	num int64
	err error
}

// pass runs the rows after the job's checkpoint in batches, each in a
// transaction with its row errors and the checkpoint; keep false rolls
// each batch's rows back (a dry run, or reject_all's first pass) and keeps
// only what the rows would have done. The file is read and the next batch
// prepared (readBatches) while a batch is written: the CPU's work and the
// database's overlap.
func (j *Jobs) pass(ctx context.Context, job gen.ImportJob, keep bool) (status, reason string, err error) {
	r, err := j.read(ctx, job)
	if err != nil {
		return j.fileFailed(err)
	}
	defer r.stop()
	for b := range r.batches {
		if err := j.runBatch(ctx, job, r.origin, b, keep); err != nil {
			return "", "", err
		}
	}
	var fe *FileError
	switch {
	case r.err == nil:
		return StatusSucceeded, "", nil
	case errors.As(r.err, &fe):
		return j.fileFailed(r.err)
	default:
		return "", "", r.err // reading the spool, or preparing, failed
	}
}

// reading is a job's file being read in batches (readBatches), each
// prepared while the one before it is written.
type reading struct {
	origin  customer.Origin
	batches <-chan batch
	// err is why the reading ended (nil at the end of the file), once
	// batches is closed.
	err    error
	cancel context.CancelFunc
}

// read starts reading the job's rows after its checkpoint; a file whose
// header cannot be read is an error at once.
func (j *Jobs) read(ctx context.Context, job gen.ImportJob) (*reading, error) {
	rs, err := newRows(job.Format, &chunkReader{ctx: ctx, q: j.q, job: job.ID})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	// Unbuffered: one batch is prepared while one is written, and the
	// emails of no more than those two are uncommitted (see readBatches).
	batches := make(chan batch)
	r := &reading{origin: origin(job), batches: batches, cancel: cancel}
	go func() {
		defer close(batches)
		r.err = j.readBatches(ctx, job, r.origin, rs, batches)
	}()
	return r, nil
}

// stop ends the reading, when the writer stops before the file ends too.
func (r *reading) stop() {
	r.cancel()
	for range r.batches { // the reader stops at its next batch
	}
}

// batch is rows of the file that commit together. In mode create, its
// readable rows were prepared (customer.PrepareCreates): creates holds what
// became of each of them, in the order of prepared, their indexes in items.
type batch struct {
	items    []item
	prepared []int
	creates  customer.PreparedCreates
}

// preparedOutcome is what preparing decided for the k-th prepared row:
// refused (err), created together (err nil), or neither (alone: the row is
// to be written by itself).
func (b *batch) preparedOutcome(k int) (alone bool, err error) {
	err = b.creates.Refusals[k]
	return err == nil && b.creates.Alone[k], err
}

// readBatches reads the rows after the job's checkpoint and sends them in
// batches, each prepared in mode create, until the file ends (nil), cannot
// be read on (a *FileError), or preparing fails. A row prepared here is
// refused when an earlier row of the file has its email or external
// reference, though that row's batch may not be committed yet.
func (j *Jobs) readBatches(ctx context.Context, job gen.ImportJob, o customer.Origin, rs rows, out chan<- batch) error {
	size := batchRows
	if job.Mode == customer.ImportCreate {
		size = createBatchRows
	}
	seen := customer.NewImportSeen()
	items := make([]item, 0, size)
	send := func() error {
		b := batch{items: items}
		if job.Mode == customer.ImportCreate {
			if err := j.prepareCreates(ctx, o, &b, seen); err != nil {
				return err
			}
		}
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		items = make([]item, 0, size)
		return nil
	}
	for {
		row, num, err := rs.next()
		end := errors.Is(err, io.EOF)
		var fe *FileError
		fileErr := errors.As(err, &fe)
		if !end && !fileErr && num > job.RowsDone {
			items = append(items, item{row: row, num: num, err: err})
		}
		if len(items) == size || ((end || fileErr) && len(items) > 0) {
			if err := send(); err != nil {
				return err
			}
		}
		switch {
		case end:
			return nil
		case fileErr:
			return err
		case err != nil && !isRowError(err):
			return err // reading the spool failed
		}
	}
}

// prepareCreates prepares the batch's readable rows, reading the customers
// of the time in a read-only transaction of its own.
func (j *Jobs) prepareCreates(ctx context.Context, o customer.Origin, b *batch, seen *customer.ImportSeen) error {
	var rows []customer.ImportRow
	for i, it := range b.items {
		if it.err == nil {
			rows, b.prepared = append(rows, it.row), append(b.prepared, i)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	return pgx.BeginTxFunc(ctx, j.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) (err error) {
		b.creates, err = j.useCases(tx).PrepareCreates(ctx, o, rows, seen)
		return err
	})
}

func isRowError(err error) bool {
	var re *RowError
	return errors.As(err, &re)
}

// fileFailed ends a job whose file cannot be read on: the rows before it
// stay as they were committed.
func (j *Jobs) fileFailed(err error) (string, string, error) {
	var fe *FileError
	if errors.As(err, &fe) {
		return StatusFailed, "the file cannot be read on: " + fe.Error(), nil
	}
	return "", "", err
}

// runBatch applies a batch's rows in one transaction, each in a savepoint
// of its own, so that a refused row undoes only itself; its errors and the
// job's checkpoint commit with it.
func (j *Jobs) runBatch(ctx context.Context, job gen.ImportJob, o customer.Origin, b batch, keep bool) error {
	return pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		work, err := tx.Begin(ctx) // the rows' work, kept or rolled back whole
		if err != nil {
			return err
		}
		uses := j.useCases(work)
		var created, updated int64
		var failed []item
		done, err := createTogether(ctx, work, uses, b)
		if err != nil {
			return err
		}
		for i, it := range b.items {
			switch r := done[i]; {
			case r == nil:
			case r.err != nil:
				failed = append(failed, item{num: it.num, err: r.err})
				continue
			default:
				created++
				continue
			}
			if it.err != nil {
				failed = append(failed, it)
				continue
			}
			sp, err := work.Begin(ctx)
			if err != nil {
				return err
			}
			_, isNew, err := uses.ImportRow(ctx, o, job.Mode, it.row)
			if err != nil {
				if rerr := sp.Rollback(ctx); rerr != nil {
					return rerr
				}
				if problem.Retryable(err) {
					return err // ours: the batch is tried again
				}
				failed = append(failed, item{num: it.num, err: err})
				continue
			}
			if err := sp.Commit(ctx); err != nil {
				return err
			}
			if isNew {
				created++
			} else {
				updated++
			}
		}
		if keep {
			err = work.Commit(ctx)
		} else {
			err = work.Rollback(ctx)
		}
		if err != nil {
			return err
		}
		q := j.q.WithTx(tx)
		if err := recordErrors(ctx, q, job, failed); err != nil {
			return err
		}
		n, err := q.CheckpointImportJob(ctx, gen.CheckpointImportJobParams{
			ID: job.ID, RowsDone: b.items[len(b.items)-1].num, Created: created, Updated: updated, Failed: int64(len(failed)),
			LeaseUntil: j.leaseFrom(time.Now()),
		})
		if err == nil && n != 1 {
			err = fmt.Errorf("imports: job %s is no longer running here", job.ID)
		}
		return err
	})
}

// outcome is a row the batch created together with others, or refused.
type outcome struct{ err error }

// createTogether writes the batch's rows prepared together, in a savepoint
// of their own; done says what became of each row of the batch (nil for
// the rows left to go one by one). When the write as a whole fails (a
// concurrent writer took an email since the check) nothing of it is kept
// and every row goes one by one.
func createTogether(ctx context.Context, work pgx.Tx, uses *customer.Service, b batch) ([]*outcome, error) {
	done := make([]*outcome, len(b.items))
	if len(b.prepared) == 0 {
		return done, nil
	}
	sp, err := work.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := uses.CreatePrepared(ctx, b.creates); err != nil {
		if rerr := sp.Rollback(ctx); rerr != nil {
			return nil, rerr
		}
		if problem.Retryable(err) {
			return nil, err // ours: the batch is tried again
		}
		return done, nil
	}
	if err := sp.Commit(ctx); err != nil {
		return nil, err
	}
	for k, i := range b.prepared {
		if alone, err := b.preparedOutcome(k); !alone {
			done[i] = &outcome{err: err}
		}
	}
	return done, nil
}

// recordErrors keeps each failed row's errors, as HTTP would answer them.
func recordErrors(ctx context.Context, q *gen.Queries, job gen.ImportJob, failed []item) error {
	for _, it := range failed {
		var errs []customer.FieldError
		var re *RowError
		if errors.As(it.err, &re) {
			errs = re.Errors
		} else {
			errs = problem.For(it.err).Errors
		}
		for i, e := range errs {
			if err := q.InsertImportError(ctx, gen.InsertImportErrorParams{
				JobID: job.ID, RowNum: it.num, Seq: int32(i), Field: e.Field, Code: e.Code, Message: e.Message,
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeAll writes every row in one transaction, which also ends the job:
// reject_all's second pass, after the first found no failed row. A row that
// fails now (a customer created meanwhile with its email, say) fails the
// job and nothing is written. The rows that can go together are written
// together, as in a pass, but without savepoints (a million rows would
// overflow PostgreSQL's cache of them): a write that fails, because a
// concurrent writer took an email since the check a moment before, fails
// the transaction. The job is then tried again after its lease, and its
// checking pass names the row.
func (j *Jobs) writeAll(ctx context.Context, job gen.ImportJob) (string, string, error) {
	r, err := j.read(ctx, job)
	if err != nil {
		return j.fileFailed(err)
	}
	defer r.stop()
	o := r.origin
	var failed *item
	var last, created, updated int64
	err = pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		uses := j.useCases(tx)
		for b := range r.batches {
			if len(b.prepared) > 0 {
				if err := uses.CreatePrepared(ctx, b.creates); err != nil {
					return err // a concurrent writer was quicker: the job is tried again
				}
			}
			together := make(map[int]error, len(b.prepared))
			for k, i := range b.prepared {
				if alone, err := b.preparedOutcome(k); !alone {
					together[i] = err
				}
			}
			for i, it := range b.items {
				refusal, wasTogether := together[i]
				isNew := true
				switch {
				case it.err != nil:
					refusal = it.err
				case !wasTogether:
					_, isNew, refusal = uses.ImportRow(ctx, o, job.Mode, it.row)
					if refusal != nil && problem.Retryable(refusal) {
						return refusal
					}
				}
				if refusal != nil {
					failed = &item{num: it.num, err: refusal}
					return errRejected
				}
				if last = it.num; isNew {
					created++
				} else {
					updated++
				}
			}
		}
		if r.err != nil {
			var fe *FileError
			if errors.As(r.err, &fe) { // the first pass read it: the spool changed
				failed = &item{num: fe.Row, err: r.err}
				return errRejected
			}
			return r.err
		}
		return j.q.WithTx(tx).FinishImportJob(ctx, gen.FinishImportJobParams{
			ID: job.ID, Status: StatusSucceeded, FinishedAt: ptr(time.Now()),
			RowsDone: last, RowsCreated: created, RowsUpdated: updated,
		})
	})
	if errors.Is(err, errRejected) {
		if err := recordErrors(ctx, j.q, job, []item{*failed}); err != nil {
			return "", "", err
		}
		return StatusFailed, fmt.Sprintf("row %d failed while writing (see the errors); nothing was written", failed.num), nil
	}
	if err != nil {
		return "", "", err
	}
	return StatusSucceeded, "", nil
}

var errRejected = errors.New("imports: a row failed")

// chunkReader reads a job's spooled file, a few chunks at a time.
type chunkReader struct {
	ctx  context.Context
	q    *gen.Queries
	job  uuid.UUID
	next int32
	buf  []byte
	more [][]byte
	done bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if len(r.more) > 0 {
			r.buf, r.more = r.more[0], r.more[1:]
			continue
		}
		if r.done {
			return 0, io.EOF
		}
		page, err := r.q.ImportChunks(r.ctx, gen.ImportChunksParams{JobID: r.job, Seq: r.next, Limit: 8})
		if err != nil {
			return 0, fmt.Errorf("imports: read the file: %w", err)
		}
		for _, c := range page {
			r.more = append(r.more, c.Data)
			r.next = c.Seq + 1
		}
		r.done = len(page) < 8
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
