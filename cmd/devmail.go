package cmd

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"trustee.dev/trustee/server/devpair"
)

// startDevMail runs mailpit (the binary at path) as the demo's MTA, with its
// messages kept under dir, and points both servers' mail at it. It returns
// the process, to be stopped on the way out.
func startDevMail(ctx context.Context, path, dir string, stateDirs ...string) (*process, error) {
	cmd := exec.CommandContext(ctx, path, devpair.MailpitArgs(dir)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mailpit: %w", err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	addr := "127.0.0.1:" + strconv.Itoa(devpair.MailSMTP)
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
	if err := devpair.UseMailpit(stateDirs...); err != nil {
		p.stop()
		return nil, err
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
