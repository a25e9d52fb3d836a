package main

import (
	"io"
	"sync"
)

// lineWriter writes log lines to w in the order they came, one write(2) at a
// time, without making a caller wait for another's write. A line logged
// while no write is under way is written at once by its caller, as a plain
// writer would, so a quiet server's log is on stderr line by line. A line
// logged while a write is under way is copied into a buffer, and one
// goroutine writes all the buffered lines with one write as soon as the
// current write is done: under load, a request's access line then costs a
// copy, not a system call. Nothing waits on a timer, so no line is held
// back; Flush and Close wait until everything before them is written.
//
// A caller waits instead of buffering more than maxBuffered bytes, so a
// stalled stderr slows logging down as it did before rather than growing
// the heap.
type lineWriter struct {
	w           io.Writer
	maxBuffered int

	mu       sync.Mutex
	more     sync.Cond // the goroutine waits here for lines or Close
	flushed  sync.Cond // callers wait here for room or for lines to be written
	buf      []byte    // lines not yet handed to w
	inflight bool      // a write to w is under way
	queued   uint64    // lines taken so far
	written  uint64    // lines written so far
	closed   bool
	done     chan struct{}
}

// logBuffer is how much a lineWriter buffers at most: thousands of lines.
const logBuffer = 1 << 20

func newLineWriter(w io.Writer, maxBuffered int) *lineWriter {
	l := &lineWriter{w: w, maxBuffered: maxBuffered, done: make(chan struct{})}
	l.more.L, l.flushed.L = &l.mu, &l.mu
	go l.run()
	return l
}

// Write writes p at once if no write is under way, else queues a copy.
func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	for l.closed && l.inflight { // no goroutine may be left to write a copy
		l.flushed.Wait()
	}
	if !l.inflight && len(l.buf) == 0 {
		l.inflight = true
		l.queued++
		seq := l.queued
		l.mu.Unlock()
		n, err := l.w.Write(p)
		l.mu.Lock()
		l.inflight = false
		l.written = seq
		l.flushed.Broadcast()
		if len(l.buf) > 0 {
			l.more.Signal()
		}
		l.mu.Unlock()
		return n, err
	}
	for len(l.buf) > 0 && len(l.buf)+len(p) > l.maxBuffered {
		l.flushed.Wait()
	}
	l.buf = append(l.buf, p...)
	l.queued++
	l.more.Signal()
	l.mu.Unlock()
	return len(p), nil
}

// Flush returns once every line taken before it has been written.
func (l *lineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for upto := l.queued; l.written < upto; {
		l.flushed.Wait()
	}
}

// Close writes what is queued and stops the goroutine. Lines written
// after it are written by their callers, as any Write may be.
func (l *lineWriter) Close() error {
	l.mu.Lock()
	l.closed = true
	l.more.Signal()
	l.mu.Unlock()
	<-l.done
	return nil
}

// run writes the queued lines, a buffer at a time, until Close.
func (l *lineWriter) run() {
	defer close(l.done)
	var spare []byte
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		for (len(l.buf) == 0 || l.inflight) && !l.closed {
			l.more.Wait()
		}
		for l.inflight { // closed: the last direct write is still under way
			l.flushed.Wait()
		}
		if len(l.buf) == 0 {
			return // closed, and nothing is left
		}
		b, upto := l.buf, l.queued
		l.buf, l.inflight = spare[:0], true
		l.mu.Unlock()
		// A failed write has nowhere to be reported: this is stderr.
		_, _ = l.w.Write(b)
		l.mu.Lock()
		l.inflight = false
		l.written = upto
		l.flushed.Broadcast()
		spare = nil
		if cap(b) <= 4*logBuffer {
			spare = b
		}
	}
}
