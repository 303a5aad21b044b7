package cmd

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"time"

	"trustee.dev/trustee/server/config"
)

// Local addresses of the demo's MTA (mailpit), when `kts dev` runs one.
const (
	devMailSMTP = 11025
	devMailHTTP = 11080
)

// startDevMail runs mailpit (the binary at path) as the demo's MTA, with its
// messages kept under dir, and points both servers' mail at it. It returns
// the process, to be stopped on the way out.
func startDevMail(ctx context.Context, path, dir string, stateDirs ...string) (*process, error) {
	cmd := exec.CommandContext(ctx, path,
		"--smtp", "127.0.0.1:"+strconv.Itoa(devMailSMTP), "--listen", "127.0.0.1:"+strconv.Itoa(devMailHTTP),
		"--database", filepath.Join(dir, "mail.db"), "--disable-version-check", "--smtp-disable-rdns", "--quiet")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mailpit: %w", err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	addr := "127.0.0.1:" + strconv.Itoa(devMailSMTP)
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("mailpit did not listen on %s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, d := range stateDirs {
		cfg, err := config.Load(d)
		if err != nil {
			p.stop()
			return nil, err
		}
		want := cfg
		want.SMTPHost, want.SMTPPort, want.SMTPTLS, want.ExternalURL = "127.0.0.1", devMailSMTP, "none", "https://127.0.0.1:"+strconv.Itoa(devActiveAPI)
		if !reflect.DeepEqual(want, cfg) {
			if err := want.Save(d); err != nil {
				p.stop()
				return nil, err
			}
		}
	}
	return p, nil
}

// devMailpit finds the mailpit binary for `kts dev`: --mailpit, else none.
func devMailpit(path string) string {
	if path == "" {
		return ""
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() {
		fmt.Fprintf(os.Stderr, "no mailpit at %s: the demo runs without mail (it waits in the outbox: kts org outbox)\n", path)
		return ""
	}
	return path
}
