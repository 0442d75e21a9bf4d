package api

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"unicode"

	"github.com/vigil-dns/vigil/store/querylog"
)

// NameReply is the answer to naming a device.
type NameReply struct {
	// Key is what the name is kept under: the device's MAC when known,
	// else its address.
	Key  string `json:"key"`
	Name string `json:"name,omitempty"`
}

// maxDeviceName bounds a name given by hand.
const maxDeviceName = 63

// nameDevice names ?device (any way of naming a client) ?name: by its MAC
// when the network told it, else by its address, so the name follows the
// device to a new address when its MAC is known.
func (a *api) nameDevice(w http.ResponseWriter, r *http.Request) error {
	if a.d.Names == nil {
		return &httpError{status: http.StatusNotImplemented, err: errors.New("devices cannot be named here")}
	}
	q := r.URL.Query()
	name := strings.TrimSpace(q.Get("name"))
	if name == "" || len(name) > maxDeviceName || strings.ContainsAny(name, ",/") || strings.IndexFunc(name, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
		return badRequest(fmt.Errorf("want ?name= a name of 1 to %d printable characters without ',' or '/', got %q", maxDeviceName, name))
	}
	who, key, err := a.deviceKey(q.Get("device"))
	if err != nil {
		return err
	}
	if a.d.Clients != nil {
		for _, c := range a.d.Clients() {
			switch {
			case c.Name == name:
				return &httpError{status: http.StatusConflict, err: fmt.Errorf("%q is a [[clients]] name in the configuration: choose another", name)}
			case c.Name == who.Name && who.Name != "":
				return &httpError{status: http.StatusConflict, err: fmt.Errorf("%s is named %q by a [[clients]] entry in the configuration: rename it there", who.Client, c.Name)}
			}
		}
	}
	if err := a.d.Names.SetName(key, name); err != nil {
		return err
	}
	return ok(w, NameReply{Key: key, Name: name})
}

// forgetDeviceName forgets the name given to ?device.
func (a *api) forgetDeviceName(w http.ResponseWriter, r *http.Request) error {
	if a.d.Names == nil {
		return &httpError{status: http.StatusNotImplemented, err: errors.New("devices cannot be named here")}
	}
	who, key, err := a.deviceKey(r.URL.Query().Get("device"))
	if err != nil {
		return err
	}
	names := a.d.Names.Names()
	if _, ok := names[key]; !ok && who.Addr.IsValid() {
		key = who.Addr.String() // named by address before its MAC was known
	}
	if err := a.d.Names.ForgetName(key); err != nil {
		return err
	}
	return ok(w, NameReply{Key: key})
}

// deviceKey resolves a device and the key a name is kept under.
func (a *api) deviceKey(device string) (Asker, string, error) {
	if strings.TrimSpace(device) == "" {
		return Asker{}, "", badRequest(errors.New("want ?device= the device: its name, an address or its MAC"))
	}
	who, err := a.asker(device, "")
	if err != nil {
		return who, "", err
	}
	switch {
	case who.MAC != [6]byte{}:
		return who, net.HardwareAddr(who.MAC[:]).String(), nil
	case who.Addr.IsValid():
		return who, who.Addr.String(), nil
	}
	return who, "", badRequest(fmt.Errorf("no address or MAC is known for %q: name it by its address", device))
}

// applyNames puts the names given by hand on the devices they name.
func (a *api) applyNames(ds []Device) {
	if a.d.Names == nil {
		return
	}
	names := a.d.Names.Names()
	if len(names) == 0 {
		return
	}
	for i := range ds {
		d := &ds[i]
		if d.NameSource == "config" {
			continue
		}
		n, ok := names[strings.ToLower(d.MAC)]
		for _, addr := range d.Addresses {
			if ok {
				break
			}
			n, ok = names[addr]
		}
		if ok {
			d.Name, d.NameSource = n, "user"
		}
	}
}

// logClient resolves a client as resolveClient does, for reading the log:
// a device named by hand is also what its older entries call it (its
// address, or the name it gave itself), so its history stays one.
func (a *api) logClient(raw string) (string, error) {
	id, err := a.resolveClient(raw)
	if err != nil || id == "" || a.d.Names == nil {
		return id, err
	}
	ids := []string{id}
	for key, name := range a.d.Names.Names() {
		if name != id {
			continue
		}
		if hw, err := net.ParseMAC(key); err == nil && a.d.Neighbors != nil {
			for _, d := range a.d.Neighbors.Devices() {
				if strings.EqualFold(d.MAC, hw.String()) {
					ids = append(ids, d.Addr.String())
					if d.Name != "" {
						ids = append(ids, d.Name)
					}
				}
			}
		} else if addr, err := netip.ParseAddr(key); err == nil {
			ids = append(ids, addr.String())
		}
	}
	slices.Sort(ids[1:])
	return strings.Join(slices.Compact(ids), querylog.IdentitySep), nil
}
