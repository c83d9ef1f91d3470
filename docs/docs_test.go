// Package docs holds the user documentation; its test keeps the links of the
// README and of these pages inside the repository, which is all a user has.
package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// teamOnly is the team's folder beside the repository, which users do not
// have (spelled in two parts, so that this file does not mention it either).
var teamOnly = filepath.Join("..", "sha"+"red")

// mdLink is a Markdown link's target.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

func TestDocumentsLinkOnlyToFilesInTheRepository(t *testing.T) {
	pages, err := filepath.Glob("*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no pages in docs/: %v", err)
	}
	pages = append(pages, filepath.Join("..", "README.md"))
	root, _ := filepath.Abs("..")
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), teamOnly) {
			t.Errorf("%s refers to %s, which users of the repository do not have", page, teamOnly)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			path, _ := filepath.Abs(filepath.Join(filepath.Dir(page), target))
			if !strings.HasPrefix(path, root+string(filepath.Separator)) {
				t.Errorf("%s links to %s, outside the repository", page, m[1])
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s, which does not exist", page, m[1])
			}
		}
	}
}
