package customer

import (
	"context"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"

	"github.com/customerbus/customerbus/events"
)

// MaxNoteTextLength caps one staff note.
const MaxNoteTextLength = 10_000

// notesOrder names the notes cursor's order (newest first).
const notesOrder = "-notes"

// Note is a staff note on a customer.
type Note struct {
	ID         uuid.UUID
	CustomerID uuid.UUID
	Author     events.NoteAuthor
	Text       string
	CreatedAt  time.Time
}

// NoteInput is the body of an add-note command.
type NoteInput struct {
	Text string `json:"text"`
}

// NotesPage is one page of notes, newest first.
type NotesPage struct {
	Notes      []Note
	NextCursor string
}

// AddNote appends a note. It is a change to the customer: the version goes up
// and customer.note_added carries it, so sequences stay without gaps.
func (s *Service) AddNote(ctx context.Context, o Origin, customerID uuid.UUID, in NoteInput) (Note, error) {
	var r rules
	text := r.text("text", in.Text, MaxNoteTextLength)
	if text == "" && len(r.errs) == 0 {
		r.fail("text", CodeRequired, "text is required")
	}
	if err := r.err(); err != nil {
		return Note{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Note{}, fmt.Errorf("add note: %w", err)
	}
	var note Note
	_, err = update(ctx, s.store, customerID, func(cur Customer) (*Mutation, error) {
		next := cur
		next.Version = cur.Version + 1
		next.UpdatedAt = s.now()
		note = Note{
			ID: id, CustomerID: cur.ID, Text: text, CreatedAt: next.UpdatedAt,
			Author: events.NoteAuthor{Type: o.Actor.Type, ID: o.Actor.ID, Name: o.ActorName},
		}
		ev, err := newEvent(o, events.CustomerNoteAdded, next, note.CreatedAt, events.CustomerNoteAddedData{
			ID: note.ID, CustomerID: note.CustomerID, Author: note.Author, Text: note.Text,
			CreatedAt: note.CreatedAt, Version: next.Version,
		})
		if err != nil {
			return nil, err
		}
		return &Mutation{Customer: next, Events: []cloudevents.Event{ev}, Notes: []Note{note}}, nil
	})
	if err != nil {
		return Note{}, err
	}
	return note, nil
}

// ListNotes returns one page of a customer's notes, newest first.
func (s *Service) ListNotes(ctx context.Context, customerID uuid.UUID, limit int, cursor string) (NotesPage, error) {
	var r rules
	limit = r.limit(limit)
	after := r.cursor(cursor, notesOrder)
	if err := r.err(); err != nil {
		return NotesPage{}, err
	}
	notes, err := s.store.ListNotes(ctx, customerID, limit+1, after)
	if err != nil {
		return NotesPage{}, err
	}
	page := NotesPage{Notes: notes}
	if len(notes) > limit {
		last := notes[limit-1]
		page.Notes = notes[:limit]
		page.NextCursor = Cursor{Order: notesOrder, ID: last.ID, Time: last.CreatedAt}.Encode()
	}
	return page, nil
}
