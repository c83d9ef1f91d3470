package natstest

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// A server stopped by Shutdown goes cleanly: it hands its leaderships over,
// tells the pull requests waiting on it to go elsewhere, and closes its
// connections, so everyone knows at once. A host that loses power or its
// network says nothing and closes nothing: its peers and clients learn of
// the loss only by its silence. So the connections a test may want to lose
// that way run through links, which a test can silence: Cluster.Vanish for
// a node's routes, Server.Line for a client's connection.

// link is one TCP connection forwarded to a server: both of its ends. Once
// silent it drops what either end sends, and closes neither.
type link struct {
	in, out net.Conn
	silent  atomic.Bool
}

// dialLink connects in to the server at addr, or closes in.
func dialLink(in net.Conn, addr string) *link {
	out, err := net.Dial("tcp", addr)
	if err != nil { // the server is not up yet, or gone: the other end retries
		in.Close()
		return nil
	}
	return &link{in: in, out: out}
}

// forward copies both ways, src being what in sends, until an end closes.
func (lk *link) forward(src io.Reader) {
	go lk.copy(lk.out, src)
	lk.copy(lk.in, lk.out)
}

// copy writes what src sends to dst until src closes, which closes the
// link; once the link is silent it drops it, and leaves the link open.
func (lk *link) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if lk.silent.Load() {
			if err != nil {
				return
			}
			continue
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			lk.close()
			return
		}
	}
}

func (lk *link) close() { lk.in.Close(); lk.out.Close() }

// Line is a client's way to a server through a link that the test can
// silence, as if the server's host had vanished.
type Line struct {
	l      net.Listener
	mu     sync.Mutex
	silent bool
	links  []*link
}

// Line opens a way to the server; it closes when the test ends.
func (s *Server) Line() *Line {
	s.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	ln := &Line{l: l}
	s.t.Cleanup(ln.close)
	addr := s.srv.Addr().String()
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			if lk := dialLink(in, addr); lk != nil {
				ln.add(lk)
				go lk.forward(in)
			}
		}
	}()
	return ln
}

// URL is what a client connects to instead of the server's URL.
func (ln *Line) URL() string { return "nats://" + ln.l.Addr().String() }

// Silence makes the line drop everything, now and on the connections made
// later, and close nothing.
func (ln *Line) Silence() {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	ln.silent = true
	for _, lk := range ln.links {
		lk.silent.Store(true)
	}
}

func (ln *Line) add(lk *link) {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	lk.silent.Store(ln.silent)
	ln.links = append(ln.links, lk)
}

func (ln *Line) close() {
	ln.l.Close()
	ln.mu.Lock()
	defer ln.mu.Unlock()
	for _, lk := range ln.links {
		lk.close()
	}
}

// junctions carry every route of a Cluster. Each node has one that
// forwards the routes the others open to it, and advertises its address,
// so that the routes it is told of by gossip go through junctions too.
// Which server opened a route a junction reads from its first line: a
// route's CONNECT names its server by id.
type junctions struct {
	ls     []net.Listener
	mu     sync.Mutex
	gone   map[int]bool    // vanished nodes, by index
	goneID map[string]bool // and by server id
	routes []route
}

// route is a link to node to, opened by the server with id from.
type route struct {
	*link
	to   int
	from string
}

// newJunctions listens for the routes to n nodes; they close when the
// cluster shuts down.
func newJunctions(t testing.TB, n int) *junctions {
	t.Helper()
	j := &junctions{gone: map[int]bool{}, goneID: map[string]bool{}}
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		j.ls = append(j.ls, l)
	}
	return j
}

// addr is where the junction to node i listens.
func (j *junctions) addr(i int) string { return j.ls[i].Addr().String() }

// run forwards the routes coming to node i's junction to the node's route
// address.
func (j *junctions) run(i int, addr string) {
	for {
		in, err := j.ls[i].Accept()
		if err != nil {
			return
		}
		go func() {
			lk := dialLink(in, addr)
			if lk == nil {
				return
			}
			r := bufio.NewReader(in)
			line, err := r.ReadString('\n')
			if err != nil {
				lk.close()
				return
			}
			var connect struct {
				Name string `json:"name"`
			}
			_ = json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSpace(line), "CONNECT ")), &connect)
			j.add(route{link: lk, to: i, from: connect.Name})
			if _, err := io.WriteString(lk.out, line); err != nil {
				lk.close()
				return
			}
			lk.forward(r)
		}()
	}
}

// add keeps the route, silent from the start if it joins a vanished node.
func (j *junctions) add(r route) {
	j.mu.Lock()
	defer j.mu.Unlock()
	r.silent.Store(j.gone[r.to] || j.goneID[r.from])
	j.routes = append(j.routes, r)
}

// silence silences every route to or from node i (server id), and those it
// or the others open later.
func (j *junctions) silence(i int, id string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.gone[i], j.goneID[id] = true, true
	for _, r := range j.routes {
		if r.to == i || r.from == id {
			r.silent.Store(true)
		}
	}
}

// close stops the junctions and their routes.
func (j *junctions) close() {
	for _, l := range j.ls {
		l.Close()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, r := range j.routes {
		r.close()
	}
}
