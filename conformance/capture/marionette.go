package main

// A minimal Marionette client (the remote protocol built into Thunderbird,
// enabled with --marionette): length-prefixed JSON over TCP on loopback.
// The harness uses it to look at Thunderbird's state (is the folder pane
// there, which folder and message are shown, is the sync done) and to do
// what a mouse click does (open a folder, select a row); keys are typed
// with xdotool, as a person would.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

type marionette struct {
	c  net.Conn
	br *bufio.Reader
	id int
}

func dialMarionette(addr string, deadline time.Time) (*marionette, error) {
	var lastErr error
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			lastErr = err
			time.Sleep(300 * time.Millisecond)
			continue
		}
		m := &marionette{c: c, br: bufio.NewReader(c)}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := m.read(); err != nil { // {"applicationType":"gecko",...}
			c.Close()
			lastErr = err
			time.Sleep(300 * time.Millisecond)
			continue
		}
		return m, nil
	}
	return nil, fmt.Errorf("marionette on %s: %v", addr, lastErr)
}

func (m *marionette) Close() error { return m.c.Close() }

func (m *marionette) read() ([]byte, error) {
	n, err := m.br.ReadString(':')
	if err != nil {
		return nil, err
	}
	size, err := strconv.Atoi(n[:len(n)-1])
	if err != nil {
		return nil, fmt.Errorf("marionette: bad length %q", n)
	}
	buf := make([]byte, size)
	_, err = io.ReadFull(m.br, buf)
	return buf, err
}

// call sends a command and returns its result.
func (m *marionette) call(name string, params any) (json.RawMessage, error) {
	m.id++
	msg, err := json.Marshal([]any{0, m.id, name, params})
	if err != nil {
		return nil, err
	}
	m.c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := fmt.Fprintf(m.c, "%d:%s", len(msg), msg); err != nil {
		return nil, err
	}
	for {
		b, err := m.read()
		if err != nil {
			return nil, err
		}
		var resp []json.RawMessage
		if err := json.Unmarshal(b, &resp); err != nil || len(resp) != 4 {
			return nil, fmt.Errorf("marionette: bad response %.200s", b)
		}
		var id int
		json.Unmarshal(resp[1], &id)
		if id != m.id {
			continue
		}
		if string(resp[2]) != "null" {
			return nil, fmt.Errorf("marionette %s: %s", name, resp[2])
		}
		return resp[3], nil
	}
}

// chrome starts a session and switches to the chrome context of the main
// window.
func (m *marionette) chrome() error {
	if _, err := m.call("WebDriver:NewSession", map[string]any{"capabilities": map[string]any{}}); err != nil {
		return err
	}
	_, err := m.call("Marionette:SetContext", map[string]any{"value": "chrome"})
	return err
}

// js runs a script in the chrome context (the main window's scope; args are
// the `arguments` array) and returns its value.
func (m *marionette) js(script string, args ...any) (json.RawMessage, error) {
	if args == nil {
		args = []any{}
	}
	r, err := m.call("WebDriver:ExecuteScript", map[string]any{"script": script, "args": args, "newSandbox": false})
	if err != nil {
		return nil, err
	}
	var v struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(r, &v); err != nil {
		return nil, err
	}
	return v.Value, nil
}

// jsString runs a script returning a string.
func (m *marionette) jsString(script string, args ...any) (string, error) {
	r, err := m.js(script, args...)
	if err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return string(r), nil
	}
	return s, nil
}
