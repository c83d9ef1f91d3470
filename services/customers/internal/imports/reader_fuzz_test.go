package imports

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// readAll reads a file to its end as a job does, and checks what the
// readers promise whatever the bytes: no panic, rows numbered 1, 2, 3 …
// (a row error included), and an end that is io.EOF or a FileError.
func readAll(t *testing.T, format string, data []byte) {
	rs, err := newRows(format, bytes.NewReader(data))
	var fe *FileError
	if err != nil {
		if !errors.As(err, &fe) {
			t.Fatalf("newRows: %v is not a FileError", err)
		}
		return
	}
	for want := int64(1); ; want++ {
		_, num, err := rs.next()
		if errors.Is(err, io.EOF) || errors.As(err, &fe) {
			return
		}
		var re *RowError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("row %d: %v is neither a RowError nor a FileError", want, err)
		}
		if num != want {
			t.Fatalf("row numbered %d, want %d", num, want)
		}
		if re != nil && (re.Row != num || len(re.Errors) == 0) {
			t.Fatalf("row %d: error %+v", num, re)
		}
		if want > int64(len(data))+1 {
			t.Fatalf("more rows than bytes: the reader does not advance")
		}
	}
}

func FuzzCSVRows(f *testing.F) {
	for _, seed := range []string{
		"email,first_name\r\nann@example.com,Ann\r\n",
		"\ufeffemail,metadata.tier,address.city\nann@example.com,gold,Berlin\n",
		"email\n\"unbalanced@example.com\n",
		"email,first_name\na@b.co,A,extra\n",
		"email,email\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) { readAll(t, FormatCSV, data) })
}

func FuzzNDJSONRows(f *testing.F) {
	for _, seed := range []string{
		"{\"email\":\"ann@example.com\",\"addresses\":[{\"city\":\"Berlin\"}]}\n",
		"{\"email\": 7}\nnot json\n\n{}\n",
		"\ufeff{\"email\":\"a@b.co\"}",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) { readAll(t, FormatNDJSON, data) })
}
