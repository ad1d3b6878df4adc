package cli

import (
	"fmt"
	"io"
	"net"
)

// listenMetrics listens on addr for the /metrics server and prints the
// address it got as one line on diag, so that a caller who asked for port
// 0 learns the port:
//
//	cgmon: serving /metrics on [::]:40127
//
// The port is what follows the last colon.
func listenMetrics(addr string, diag io.Writer) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(diag, "cgmon: serving /metrics on %s\n", ln.Addr())
	return ln, nil
}
