package main

// The sender reputation list: parsing, lookup and reloading. Kept free of gRPC so that
// reputation_test.go can test the policy alone.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// MinScore and MaxScore bound a list entry's score.
const (
	MinScore = -100
	MaxScore = 100
)

// Reputation maps addresses and domains to scores. It is immutable once parsed: a reload
// builds a new one and swaps it in atomically, so lookups never take a lock.
type Reputation struct {
	addresses map[string]int // "user@example.org"
	domains   map[string]int // "example.org": that domain only
	trees     map[string]int // "example.org": the domain and every subdomain (".example.org")
}

// Entries is the number of patterns in the list.
func (r *Reputation) Entries() int {
	return len(r.addresses) + len(r.domains) + len(r.trees)
}

// ParseReputation reads a list; an error names the line and what is wrong with it.
func ParseReputation(in io.Reader) (*Reputation, error) {
	r := &Reputation{map[string]int{}, map[string]int{}, map[string]int{}}
	sc := bufio.NewScanner(in)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			return nil, fmt.Errorf("line %d: %q has no score (write PATTERN SCORE)", n, line)
		}
		pattern := strings.ToLower(fields[0])
		score, err := strconv.Atoi(fields[1])
		if err != nil || score < MinScore || score > MaxScore {
			return nil, fmt.Errorf("line %d: score %q is not a whole number from %d to %d",
				n, fields[1], MinScore, MaxScore)
		}
		var table map[string]int
		key := pattern
		switch {
		case strings.Contains(pattern, "@"):
			if strings.Count(pattern, "@") != 1 || strings.HasPrefix(pattern, "@") ||
				strings.HasSuffix(pattern, "@") {
				return nil, fmt.Errorf("line %d: %q is not an address", n, pattern)
			}
			table = r.addresses
		case strings.HasPrefix(pattern, "."):
			key = pattern[1:]
			table = r.trees
		default:
			table = r.domains
		}
		if key == "" || strings.Contains(key, "..") || strings.HasSuffix(key, ".") {
			return nil, fmt.Errorf("line %d: %q is not a domain", n, pattern)
		}
		if _, dup := table[key]; dup {
			return nil, fmt.Errorf("line %d: %q is listed twice", n, pattern)
		}
		table[key] = score
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %v", n+1, err)
	}
	return r, nil
}

// Lookup returns the score of the most specific entry for a sender, and whether one matched.
func (r *Reputation) Lookup(sender string) (int, bool) {
	sender = strings.ToLower(strings.TrimSpace(sender))
	at := strings.LastIndexByte(sender, '@')
	if at < 0 {
		return 0, false // no domain: nothing to judge (the server checks syntax)
	}
	if s, ok := r.addresses[sender]; ok {
		return s, true
	}
	domain := strings.TrimSuffix(sender[at+1:], ".")
	if s, ok := r.domains[domain]; ok {
		return s, true
	}
	for d := domain; d != ""; {
		if s, ok := r.trees[d]; ok {
			return s, true
		}
		dot := strings.IndexByte(d, '.')
		if dot < 0 {
			break
		}
		d = d[dot+1:]
	}
	return 0, false
}

// ReputationFile is a list on disk that is re-read when its size or modification time changes.
type ReputationFile struct {
	Path    string
	current atomic.Value // *Reputation
	stamp   string
}

// LoadReputationFile reads the file once; an error refuses the configuration.
func LoadReputationFile(path string) (*ReputationFile, error) {
	f := &ReputationFile{Path: path}
	if _, err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Current is the list in force.
func (f *ReputationFile) Current() *Reputation {
	return f.current.Load().(*Reputation)
}

func fileStamp(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d/%d", st.Size(), st.ModTime().UnixNano()), nil
}

// Reload re-reads the file if it changed; it reports whether a new list is in force. On an
// error the previous list stays.
func (f *ReputationFile) Reload() (bool, error) {
	stamp, err := fileStamp(f.Path)
	if err != nil {
		return false, fmt.Errorf("reputation list %s: %v", f.Path, err)
	}
	if stamp == f.stamp {
		return false, nil
	}
	in, err := os.Open(f.Path)
	if err != nil {
		return false, fmt.Errorf("reputation list %s: %v", f.Path, err)
	}
	defer in.Close()
	r, err := ParseReputation(in)
	f.stamp = stamp // a broken file is reported once, not at every poll
	if err != nil {
		return false, fmt.Errorf("reputation list %s: %v", f.Path, err)
	}
	f.current.Store(r)
	return true, nil
}

// Watch polls the file every interval until stop is closed, logging reloads and errors.
func (f *ReputationFile) Watch(interval time.Duration, stop <-chan struct{}, log *Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			changed, err := f.Reload()
			if err != nil {
				log.Errorf("%v; keeping the previous list", err)
			} else if changed {
				log.Infof("reloaded %s: %d entries", f.Path, f.Current().Entries())
			}
		}
	}
}
