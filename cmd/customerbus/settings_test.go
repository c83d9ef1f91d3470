package main

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// settingsPage holds the one table of every setting, under the heading
// settingsHeading.
const (
	settingsPage    = "../../docs/operations.md"
	settingsHeading = "## Settings"
)

// setting is one environment variable as the configuration structs declare it.
type setting struct {
	name     string
	def      string // envDefault, "" when there is none
	hasDef   bool
	required bool   // the tag says ",required"
	field    string // where it is declared, for messages
}

// tableDefault is how the settings table writes a setting's default, the
// convention of the table's "default" column:
//   - the exact envDefault in backticks, e.g. `30s` or `0s` (an explanation
//     such as "forever" goes in the meaning column, not here);
//   - the bare word required for a tag with ",required" and no envDefault;
//   - the bare word empty when there is no envDefault (including settings
//     like PUBLIC_BASE_URL whose empty value main computes into something
//     else; the meaning column says what).
func (s setting) tableDefault() string {
	switch {
	case s.hasDef:
		return "`" + s.def + "`"
	case s.required:
		return "required"
	default:
		return "empty"
	}
}

// envSettings walks a configuration type the way caarlos0/env parses it:
// a field with an env tag is a setting; a struct field without one is
// nested configuration and is walked in turn. Only the tags count, never
// the package a field's type is declared in, so configuration may move
// between packages (or be reached through a type alias) freely.
func envSettings(t reflect.Type, path string) []setting {
	var out []setting
	for i := range t.NumField() {
		f := t.Field(i)
		where := path + "." + f.Name
		tag, ok := f.Tag.Lookup("env")
		if !ok {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && f.IsExported() {
				out = append(out, envSettings(ft, where)...)
			}
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			continue
		}
		def, hasDef := f.Tag.Lookup("envDefault")
		s := setting{name: name, def: def, hasDef: hasDef, field: where}
		for _, o := range strings.Split(opts, ",") {
			if o == "required" {
				s.required = true
			}
		}
		out = append(out, s)
	}
	return out
}

// cellSplit splits a Markdown table row on the pipes that are not escaped.
var cellSplit = regexp.MustCompile(`(^|[^\\])\|`)

func tableCells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimPrefix(row, "|")
	row = strings.TrimSuffix(row, "|")
	var cells []string
	last := 0
	for _, m := range cellSplit.FindAllStringIndex(row, -1) {
		end := m[1] - 1 // the pipe
		cells = append(cells, strings.TrimSpace(row[last:end]))
		last = m[1]
	}
	return append(cells, strings.TrimSpace(row[last:]))
}

// tableRow is one row of the settings table.
type tableRow struct {
	def  string
	line int
}

// settingsTable reads the first table under settingsHeading: variable name
// (one code span) to its default cell.
func settingsTable(t *testing.T, page string) map[string]tableRow {
	t.Helper()
	f, err := os.Open(page)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]tableRow{}
	var inSection, inTable bool
	varCol, defCol := -1, -1
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			if inTable {
				break
			}
			inSection = strings.TrimSpace(line) == settingsHeading
			continue
		}
		if !inSection {
			continue
		}
		if !strings.HasPrefix(strings.TrimSpace(line), "|") {
			if inTable {
				break // the table ended
			}
			continue
		}
		cells := tableCells(line)
		if !inTable {
			inTable = true
			for i, c := range cells {
				switch c {
				case "variable":
					varCol = i
				case "default":
					defCol = i
				}
			}
			if varCol < 0 || defCol < 0 {
				t.Fatalf("%s:%d: the settings table needs the columns variable and default, has %q", page, n, cells)
			}
			continue
		}
		if strings.Trim(strings.Join(cells, ""), "-: ") == "" {
			continue // the delimiter row
		}
		if len(cells) <= varCol || len(cells) <= defCol {
			t.Errorf("%s:%d: row has %d cells", page, n, len(cells))
			continue
		}
		name := cells[varCol]
		if len(name) < 3 || name[0] != '`' || name[len(name)-1] != '`' || strings.Count(name, "`") != 2 {
			t.Errorf("%s:%d: variable cell %q must be one name in backticks", page, n, name)
			continue
		}
		name = strings.Trim(name, "`")
		if prev, ok := rows[name]; ok {
			t.Errorf("%s:%d: %s is in the table twice (also line %d)", page, n, name, prev.line)
		}
		rows[name] = tableRow{def: cells[defCol], line: n}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no settings table under %q", page, settingsHeading)
	}
	return rows
}

func TestSettingsTableMatchesTheConfigurationStructs(t *testing.T) {
	declared := map[string]setting{}
	for _, s := range envSettings(reflect.TypeFor[config](), "config") {
		if prev, ok := declared[s.name]; ok {
			// One variable read by two services (DEADLETTER_MAX_AGE):
			// one row, so they must agree.
			if prev.tableDefault() != s.tableDefault() {
				t.Errorf("%s has default %s in %s but %s in %s; the table can show only one",
					s.name, prev.tableDefault(), prev.field, s.tableDefault(), s.field)
			}
			continue
		}
		declared[s.name] = s
	}
	if len(declared) < 10 {
		t.Fatalf("found only %d settings in config; is the walk broken?", len(declared))
	}

	table := settingsTable(t, settingsPage)
	for name, s := range declared {
		row, ok := table[name]
		if !ok {
			t.Errorf("%s (%s) is missing from the settings table in %s; add a row with default %s",
				name, s.field, settingsPage, s.tableDefault())
			continue
		}
		if row.def != s.tableDefault() {
			t.Errorf("%s:%d: %s's default is %q, want %q (%s)", settingsPage, row.line, name, row.def, s.tableDefault(), s.field)
		}
	}
	for name, row := range table {
		if _, ok := declared[name]; !ok {
			t.Errorf("%s:%d: %s is in the settings table but no configuration struct reads it", settingsPage, row.line, name)
		}
	}
}

// settingsHeader is the header of a settings table, which only settingsPage
// may have: other pages mention a setting in prose and link to the table.
var settingsHeader = regexp.MustCompile(`(?m)^\|\s*variable\s*\|`)

func TestOnlyTheOperationsPageHasASettingsTable(t *testing.T) {
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no pages in docs/: %v", err)
	}
	pages = append(pages, "../../README.md")
	for _, page := range pages {
		if filepath.Clean(page) == filepath.Clean(settingsPage) {
			continue
		}
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		if settingsHeader.Match(b) {
			t.Errorf("%s has a settings table; settings belong in the one table in %s", page, settingsPage)
		}
	}
}
