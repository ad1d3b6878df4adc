package cgroupmon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// userBusAddress returns the user's D-Bus address: $DBUS_SESSION_BUS_ADDRESS,
// else $XDG_RUNTIME_DIR/bus when that socket exists.
func userBusAddress() (string, error) {
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" {
		return a, nil
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		p := filepath.Join(d, "bus")
		if _, err := os.Stat(p); err == nil {
			return "unix:path=" + p, nil
		}
		return "", fmt.Errorf("no user bus: $DBUS_SESSION_BUS_ADDRESS is unset and %s does not exist", p)
	}
	return "", errors.New("no user bus: neither $DBUS_SESSION_BUS_ADDRESS nor $XDG_RUNTIME_DIR is set")
}

// userManager connects to the user's systemd instance on the user bus.
// (containerd's NewSystemd talks to the system bus and never asks for
// delegation, so it is not used.)
func userManager(ctx context.Context) (*sddbus.Conn, error) {
	addr, err := userBusAddress()
	if err != nil {
		return nil, err
	}
	dial := func() (*godbus.Conn, error) {
		c, err := godbus.Dial(addr, godbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if err := c.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			c.Close()
			return nil, err
		}
		if err := c.Hello(); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	conn, err := sddbus.NewConnection(dial)
	if err != nil {
		return nil, fmt.Errorf("user bus %s: %w", addr, err)
	}
	return conn, nil
}

// probeUserManager says whether the user's systemd instance answers on
// the user bus, and which controllers it would delegate (those of its
// user@UID.service cgroup under mount), without changing anything.
func probeUserManager(mount string) UserManager {
	var um UserManager
	addr, err := userBusAddress()
	if err != nil {
		um.Reason = err.Error()
		return um
	}
	um.Address = addr
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := userManager(ctx)
	if err != nil {
		um.Reason = "cannot reach the user's systemd instance: " + err.Error()
		return um
	}
	defer conn.Close()
	v, err := conn.GetManagerProperty("Version")
	if err != nil {
		um.Reason = "the user bus answers but systemd does not: " + err.Error()
		return um
	}
	um.Reachable, um.Version = true, v
	if mount != "" {
		uid := strconv.Itoa(os.Getuid())
		svc := filepath.Join(mount, "user.slice", "user-"+uid+".slice", "user@"+uid+".service", "cgroup.controllers")
		if b, err := readCapped(svc); err == nil {
			c, _ := parseControllers(b)
			um.Delegates = nonNil(c)
		}
	}
	return um
}

// startUserScope asks the user's systemd instance for a transient scope
// with Delegate=yes holding this process, and waits for its job to finish.
// The scope is stopped by systemd once its last process exits.
func startUserScope(ctx context.Context) (string, error) {
	conn, err := userManager(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	name := fmt.Sprintf("cgmon-%d-%d.scope", os.Getpid(), time.Now().UnixNano()%1e9)
	props := []sddbus.Property{
		sddbus.PropDescription("cgmon execution monitor (delegated cgroup)"),
		sddbus.PropPids(uint32(os.Getpid())),
		{Name: "Delegate", Value: godbus.MakeVariant(true)},
		{Name: "CollectMode", Value: godbus.MakeVariant("inactive-or-failed")},
	}
	ch := make(chan string, 1)
	if _, err := conn.StartTransientUnitContext(ctx, name, "fail", props, ch); err != nil {
		return "", fmt.Errorf("StartTransientUnit %s: %w", name, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return "", fmt.Errorf("StartTransientUnit %s: job %s", name, res)
		}
	case <-ctx.Done():
		return "", fmt.Errorf("StartTransientUnit %s: %w", name, ctx.Err())
	}
	return name, nil
}
