package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

func dockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		cur += trimmed
		if cur != "" {
			cmd, args, _ := strings.Cut(cur, " ")
			out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		}
		cur = ""
	}
	return out
}

// The image cannot be built here (no docker daemon), so its rules are read
// from the Dockerfile: a build stage that makes a static, stripped binary, a
// distroless or scratch final stage that runs it as a non-root user, and no
// HEALTHCHECK (the orchestrator probes).
func TestDockerfileBuildsAStaticBinaryRunAsNonRootOnDistroless(t *testing.T) {
	ins := dockerfile(t, "../Dockerfile")
	var stages [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s before the first FROM", in.cmd)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
		if in.cmd == "HEALTHCHECK" {
			t.Errorf("HEALTHCHECK %s: probes are the orchestrator's, and compose's", in.args)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages: want a build stage and a final one", len(stages))
	}

	fromImage := func(stage []instruction) string {
		for _, f := range strings.Fields(stage[0].args) {
			if !strings.HasPrefix(f, "--") {
				return f
			}
		}
		return ""
	}
	build, final := stages[0], stages[len(stages)-1]
	if img := fromImage(build); !strings.HasPrefix(img, "golang:") {
		t.Errorf("build stage FROM %s: want golang:", img)
	}
	var built bool
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			built = true
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/customerbus"} {
				if !strings.Contains(in.args, want) {
					t.Errorf("go build without %s: %s", want, in.args)
				}
			}
		}
	}
	if !built {
		t.Error("the build stage runs no go build")
	}

	img := fromImage(final)
	distroless := regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:(nonroot|[\w.-]*-nonroot)$`)
	if !distroless.MatchString(img) && img != "scratch" {
		t.Errorf("final stage FROM %s: want gcr.io/distroless/static-*:nonroot or scratch", img)
	}
	var user, entrypoint string
	var copied bool
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "COPY":
			copied = copied || strings.Contains(in.args, "--from=")
		case "RUN":
			t.Errorf("RUN %s in the final stage: it has no shell", in.args)
		}
	}
	if name, _, _ := strings.Cut(user, ":"); name == "" || name == "root" || name == "0" {
		t.Errorf("final stage USER %q: want a non-root user", user)
	}
	if !copied {
		t.Error("the final stage copies nothing from the build stage")
	}
	if entrypoint != `["/customerbus"]` {
		t.Errorf("ENTRYPOINT %s: want the binary, in exec form, so the command is the service", entrypoint)
	}

	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "var"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}
