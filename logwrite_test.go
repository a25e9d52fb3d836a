package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// gatedWriter records what it is given; while gate is held, writes wait.
// entered is closed when the first write has begun.
type gatedWriter struct {
	gate    sync.Mutex
	mu      sync.Mutex
	b       bytes.Buffer
	writes  int
	entered chan struct{}
	once    sync.Once
}

func newGatedWriter() *gatedWriter { return &gatedWriter{entered: make(chan struct{})} }

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	g.gate.Lock()
	defer g.gate.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writes++
	return g.b.Write(p)
}

func (g *gatedWriter) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.String()
}

// TestLineWriterOrderAndCompleteness: lines from many goroutines, some
// while the output is stalled and the buffer full, all arrive, whole, each
// goroutine's in its order, and Close returns only once they have.
func TestLineWriterOrderAndCompleteness(t *testing.T) {
	g := newGatedWriter()
	l := newLineWriter(g, 200) // a few lines: writers must wait for room
	g.gate.Lock()
	var wg sync.WaitGroup
	const writers, lines = 8, 300
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				if _, err := fmt.Fprintf(l, "w%d %04d\n", w, i); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	g.gate.Unlock()
	wg.Wait()
	l.Close()

	got := strings.Split(strings.TrimSuffix(g.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines written, want %d", len(got), writers*lines)
	}
	next := make([]int, writers)
	for _, line := range got {
		var w, i int
		if _, err := fmt.Sscanf(line, "w%d %d", &w, &i); err != nil {
			t.Fatalf("line %q is not whole: %v", line, err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: line %d came where %d was due", w, i, next[w])
		}
		next[w]++
	}
}

// TestLineWriterFlush: once Flush returns, every line taken before it is
// out, including lines queued behind a stalled write.
func TestLineWriterFlush(t *testing.T) {
	g := newGatedWriter()
	l := newLineWriter(g, logBuffer)
	defer l.Close()
	g.gate.Lock()
	first := make(chan struct{})
	go func() {
		defer close(first)
		l.Write([]byte("first\n")) // written at once: it waits at the gate
	}()
	<-g.entered
	l.Write([]byte("second\n")) // queued behind it
	g.gate.Unlock()
	l.Flush()
	if got := g.String(); got != "first\nsecond\n" {
		t.Fatalf("after Flush the output is %q", got)
	}
	<-first
}

// TestLineWriterCoalesces: lines logged while a write is under way share
// one write, instead of costing one each.
func TestLineWriterCoalesces(t *testing.T) {
	g := newGatedWriter()
	l := newLineWriter(g, logBuffer)
	g.gate.Lock()
	go l.Write([]byte("direct\n"))
	<-g.entered // the direct write holds the output
	for i := range 100 {
		fmt.Fprintf(l, "queued %d\n", i)
	}
	g.gate.Unlock()
	l.Close()
	if g.writes != 2 {
		t.Errorf("101 lines took %d writes, want 2 (one direct, one for the 100 queued behind it)", g.writes)
	}
	if n := strings.Count(g.String(), "\n"); n != 101 {
		t.Errorf("%d lines written, want 101", n)
	}
}

// TestLineWriterAfterClose: a line after Close is written by its caller.
func TestLineWriterAfterClose(t *testing.T) {
	g := newGatedWriter()
	l := newLineWriter(g, logBuffer)
	l.Write([]byte("before\n"))
	l.Close()
	l.Write([]byte("after\n"))
	if got := g.String(); got != "before\nafter\n" {
		t.Fatalf("output %q", got)
	}
}
