package daemon

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// tlsRecordHandshake is the first byte of every TLS connection (a
// handshake record). Plain HTTP starts with a method name.
const tlsRecordHandshake = 0x16

// splitListener serves TLS and plain HTTP on one port: each accepted
// connection is routed by its first byte. HKP clients (GnuPG's hkp://) speak
// plain HTTP on 11371; everything else is HTTPS.
type splitListener struct {
	tls, plain *chanListener
}

func split(ln net.Listener) *splitListener {
	s := &splitListener{tls: newChanListener(ln.Addr()), plain: newChanListener(ln.Addr())}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				s.tls.Close()
				s.plain.Close()
				return
			}
			go s.route(c)
		}
	}()
	return s
}

// route reads the first byte (waiting at most 10 s) and hands the
// connection, that byte included, to the matching side.
func (s *splitListener) route(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReaderSize(c, 16)
	first, err := r.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: r}
	side := s.plain
	if first[0] == tlsRecordHandshake {
		side = s.tls
	}
	if !side.deliver(pc) {
		c.Close()
	}
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener is a net.Listener fed by a channel.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
