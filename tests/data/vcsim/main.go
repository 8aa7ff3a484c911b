// A vCenter simulator for the push/run vcenter tests: govmomi's simulator package (Debian's
// golang-github-vmware-govmomi-dev) with its VPX inventory (datacenter DC0, cluster DC0_C0 of three hosts,
// host DC0_H0, datastore LocalDS_0, networks "VM Network" and DC0_DVPG0), served over HTTPS on -listen.
// It prints the SDK URL on one line, then serves until SIGINT/SIGTERM; -trace FILE records the SOAP traffic.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	user := flag.String("user", "user:pass", "the only user:password accepted")
	trace := flag.String("trace", "", "a file to write every SOAP request and response to")
	flag.Parse()

	if *trace != "" {
		f, err := os.Create(*trace)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		simulator.Trace = true
		simulator.TraceFile = f
	}

	model := simulator.VPX()
	defer model.Remove()
	if err := model.Create(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	u := &url.URL{Host: *listen}
	if name, pass, ok := cut(*user); ok {
		u.User = url.UserPassword(name, pass)
	}
	model.Service.Listen = u
	model.Service.TLS = new(tls.Config)
	s := model.Service.NewServer()
	fmt.Println(s.URL.String())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	s.Close()
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}
