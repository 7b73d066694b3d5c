// go_filter: an Elemta external plugin in Go, served by hashicorp/go-plugin. It judges the
// envelope sender at MAIL FROM against an on-disk reputation list (reputation.txt): a poor
// score is refused (550) or deferred (450), a good one tagged sender.trusted=yes.
//
// go-plugin does the handshake (the magic cookie, the protocol version, the line
// "1|1|unix|/tmp/pluginNNN|grpc|" on stdout), the grpc.health.v1 service "plugin" and
// plugin.GRPCController/Shutdown; this program registers the elemta.plugin.v1 Plugin service
// on its gRPC server. Build with ./build.sh, which also writes catalog.toml.
package main

import (
	"context"
	"math"
	"os"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "elemta/plugin/v1"
)

// Handshake is the server's: ELEMTA_PLUGIN_MAGIC_COOKIE guards against running the binary by
// hand, and ProtocolVersion is the hook protocol (the handshake's APP-VERSION).
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  protocolVersion,
	MagicCookieKey:   "ELEMTA_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "3f1b7c52e0a94d6c8e2f5a71c4d9b806",
}

// hookPlugin plugs the Plugin service into go-plugin's gRPC server. It is never a client:
// the client is the mail server.
type hookPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl pb.PluginServer
}

func (p *hookPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterPluginServer(s, p.impl)
	return nil
}

func (p *hookPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, nil
}

// grpcServer lifts gRPC's 4 MiB receive limit: the message hook carries whole messages.
func grpcServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(math.MaxInt32))...)
}

// watchParent exits when the server that started us is gone (the server also sets
// PR_SET_PDEATHSIG; this covers launchers that do not).
func watchParent(log *Logger) {
	parent := os.Getppid()
	for range time.Tick(500 * time.Millisecond) {
		if os.Getppid() != parent {
			log.Warningf("parent %d is gone; exiting", parent)
			os.Exit(0)
		}
	}
}

func main() {
	log := NewLogger() // before Serve, which replaces os.Stderr
	go watchParent(log)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{"hooks": &hookPlugin{impl: newFilter(log)}},
		GRPCServer:      grpcServer,
		// go-plugin's own messages, as JSON lines the server logs at their level.
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: pluginName, Level: hclog.Warn, Output: log.Writer(), JSONFormat: true,
		}),
	})
}
