package main

// Logging to the server: every line on stderr is captured into the server's log, at the
// level its first word names (INFO, WARNING, ERROR …).
//
// go-plugin 1.0.1 swaps os.Stderr for a pipe that nobody reads once it has printed the
// handshake line (its gRPC server never forwards it), so a write to os.Stderr after Serve
// would block once the pipe is full. The logger keeps the real stderr, taken before Serve.

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// Logger writes "LEVEL message" lines to the stderr the process started with (the server
// logs them under elemta.plugin.<name>).
type Logger struct {
	mu  sync.Mutex
	out io.Writer
}

// NewLogger must be called before plugin.Serve, while os.Stderr is still the real one.
func NewLogger() *Logger {
	return &Logger{out: os.Stderr}
}

// Writer is the real stderr, for libraries (go-plugin's own logger).
func (l *Logger) Writer() io.Writer { return l.out }

func (l *Logger) logf(level, format string, args ...interface{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.out, "%s %s\n", level, fmt.Sprintf(format, args...))
}

func (l *Logger) Infof(format string, args ...interface{})    { l.logf("INFO", format, args...) }
func (l *Logger) Warningf(format string, args ...interface{}) { l.logf("WARNING", format, args...) }
func (l *Logger) Errorf(format string, args ...interface{})   { l.logf("ERROR", format, args...) }
