//go:build unix

package pg_test

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/pg/pgtest"
)

// hostAddress returns an address of this host that is not loopback, or
// skips the test when there is none.
func hostAddress(t *testing.T) netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if ip = ip.Unmap(); ok && ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
			return ip
		}
	}
	t.Skip("this host has no IPv4 address besides loopback")
	return netip.Addr{}
}

// TestClientsFrom connects as the database user from an address of this
// host that is not loopback: refused until ClientsFrom admits its network,
// and then for that user only.
func TestClientsFrom(t *testing.T) {
	ctx := testContext(t)
	addr := hostAddress(t)
	const password, otherPassword = "clients-from-password", "other-password"
	inst := pgtest.NewInstance(t)
	inst.ListenAddresses = "127.0.0.1," + addr.String()
	if err := inst.Init(ctx, password); err != nil {
		t.Fatal(err)
	}
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, inst.ConnString(pg.DefaultDatabase, password))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE ROLE other LOGIN PASSWORD '"+otherPassword+"'"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	over := func(user, password string) error {
		remote := *inst
		remote.Host, remote.User = addr.String(), user
		c, err := pgx.Connect(ctx, remote.ConnString(pg.DefaultDatabase, password))
		if err == nil {
			c.Close(context.Background())
		}
		return err
	}
	// Loopback only, by default.
	if err := over(pg.DefaultUser, password); !isCode(err, "28000") {
		t.Fatalf("from %s by default: %v; want no pg_hba.conf entry (28000)", addr, err)
	}

	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	inst.ClientsFrom = []string{netip.PrefixFrom(addr, addr.BitLen()).String()}
	if err := inst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := over(pg.DefaultUser, password); err != nil {
		t.Fatalf("from %s admitted by ClientsFrom %v: %v", addr, inst.ClientsFrom, err)
	}
	if err := over(pg.DefaultUser, "wrong"); !isCode(err, "28P01") {
		t.Fatalf("from %s with a wrong password: %v; want invalid_password (28P01)", addr, err)
	}
	if err := over("other", otherPassword); !isCode(err, "28000") {
		t.Fatalf("another role from %s: %v; want no pg_hba.conf entry (28000)", addr, err)
	}
	// Loopback still admits every role.
	local := *inst
	local.User = "other"
	if c, err := pgx.Connect(ctx, local.ConnString(pg.DefaultDatabase, otherPassword)); err != nil {
		t.Fatalf("another role over loopback: %v", err)
	} else {
		c.Close(ctx)
	}
}
