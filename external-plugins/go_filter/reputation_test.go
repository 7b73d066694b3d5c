package main

// Unit tests of the list and the policy (./build.sh test). The whole plugin, through a real
// mail server and SMTP, is tested in tests/integration/langs/test_go_plugin.py.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "elemta/plugin/v1"
)

const sample = `
# comment
spammer@bad.example  -100
bad.example          -80
.bulk.example        -40  a comment
partner.example       80
`

func mustParse(t *testing.T, text string) *Reputation {
	t.Helper()
	r, err := ParseReputation(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return r
}

func TestLookupMostSpecificWins(t *testing.T) {
	r := mustParse(t, sample)
	cases := []struct {
		sender string
		score  int
		listed bool
	}{
		{"spammer@bad.example", -100, true},
		{"SPAMMER@Bad.Example", -100, true},
		{"other@bad.example", -80, true},
		{"x@sub.bad.example", 0, false}, // "bad.example" is that domain only
		{"x@bulk.example", -40, true},   // ".bulk.example" is the domain and its subdomains
		{"x@a.b.bulk.example", -40, true},
		{"x@notbulk.example", 0, false},
		{"x@partner.example", 80, true},
		{"x@partner.example.", 80, true},
		{"no-domain", 0, false},
	}
	for _, c := range cases {
		score, listed := r.Lookup(c.sender)
		if score != c.score || listed != c.listed {
			t.Errorf("Lookup(%q) = %d, %v; want %d, %v", c.sender, score, listed, c.score, c.listed)
		}
	}
	if r.Entries() != 4 {
		t.Errorf("Entries() = %d, want 4", r.Entries())
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	cases := map[string]string{
		"a.example\n":              "line 1: \"a.example\" has no score",
		"\na.example x\n":          "line 2: score \"x\"",
		"a.example 101\n":          "line 1: score \"101\"",
		"@a.example 1\n":           "is not an address",
		"a@b@c 1\n":                "is not an address",
		". 1\n":                    "is not a domain",
		"a..example 1\n":           "is not a domain",
		"a.example 1\na.example 2": "line 2: \"a.example\" is listed twice",
	}
	for text, want := range cases {
		_, err := ParseReputation(strings.NewReader(text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseReputation(%q) error = %v; want it to contain %q", text, err, want)
		}
	}
}

func TestDecide(t *testing.T) {
	c := DefaultConfig()
	r := mustParse(t, sample)
	from := func(s string) *pb.Context { return &pb.Context{MailFrom: s, HasMailFrom: true} }

	if got := Decide(&c, r, from("x@bad.example")); got.Action != pb.Action_ACTION_REJECT ||
		got.Code != 550 || got.Enhanced != "5.7.1" || got.Tags["sender.reputation"] != "-80" {
		t.Errorf("bad.example: %v", got)
	}
	if got := Decide(&c, r, from("x@mx.bulk.example")); got.Action != pb.Action_ACTION_TEMPFAIL ||
		got.Code != 450 {
		t.Errorf("bulk.example: %v", got)
	}
	if got := Decide(&c, r, from("x@partner.example")); got.Action != pb.Action_ACTION_CONTINUE ||
		got.Tags["sender.trusted"] != "yes" {
		t.Errorf("partner.example: %v", got)
	}
	if got := Decide(&c, r, from("x@elsewhere.example")); got.Action != pb.Action_ACTION_CONTINUE ||
		len(got.Tags) != 0 {
		t.Errorf("unlisted: %v", got)
	}
	// The null sender (a bounce) is never judged, even from a listed domain.
	if got := Decide(&c, r, from("")); got.Action != pb.Action_ACTION_CONTINUE {
		t.Errorf("null sender: %v", got)
	}
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(`{"list_file": "x.txt", "reject_at": -90}`)
	if err != nil || c.ListFile != "x.txt" || c.RejectAt != -90 || c.TempfailAt != -20 {
		t.Errorf("ParseConfig = %+v, %v", c, err)
	}
	for raw, want := range map[string]string{
		`{"list_fil": "x"}`:                    "unknown field",
		`{"list_file": ""}`:                    "list_file is empty",
		`{"reject_at": 0, "tempfail_at": -10}`: "reject_at (0) must not be above",
		`{"trust_at": -30}`:                    "trust_at (-30) must be above",
		`{"reload_interval_s": 0}`:             "reload_interval_s must be positive",
		`[1]`:                                  "config:",
	} {
		if _, err := ParseConfig(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig(%s) error = %v; want %q", raw, err, want)
		}
	}
}

func TestReloadKeepsTheOldListOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rep.txt")
	write := func(text string) {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.example -100\n")
	f, err := LoadReputationFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write("a.example -100\nb.example -100 and a longer line\n")
	if changed, err := f.Reload(); !changed || err != nil {
		t.Fatalf("Reload = %v, %v", changed, err)
	}
	if _, listed := f.Current().Lookup("x@b.example"); !listed {
		t.Error("b.example not listed after the reload")
	}
	write("broken line without a score, longer than the last one\n")
	if _, err := f.Reload(); err == nil {
		t.Fatal("a broken list was accepted")
	}
	if _, listed := f.Current().Lookup("x@b.example"); !listed {
		t.Error("the previous list was dropped after a broken reload")
	}
}
