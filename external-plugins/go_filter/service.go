package main

// The elemta.plugin.v1 Plugin service: Describe, Configure, and hook calls both as one
// long-lived stream (many calls in flight, answered in any order) and as unary calls.

import (
	"context"
	"io"
	"sync"
	"time"

	pb "elemta/plugin/v1"
)

const (
	pluginName    = "go_filter"
	pluginVersion = "1.0.0"
	// protocolVersion is elemta.plugin.v1; Describe must echo it.
	protocolVersion = 1
)

// filter holds the configuration in force; Configure replaces it.
type filter struct {
	log  *Logger
	mu   sync.RWMutex
	conf Config
	list *ReputationFile
	stop chan struct{} // closes the list watcher of the previous configuration
}

func newFilter(log *Logger) *filter { return &filter{log: log} }

func (f *filter) Describe(ctx context.Context, req *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	if req.ProtocolVersion != 0 && req.ProtocolVersion != protocolVersion {
		f.log.Errorf("the server speaks hook protocol %d, this plugin speaks %d",
			req.ProtocolVersion, protocolVersion)
	}
	return &pb.DescribeResponse{
		Name:            pluginName,
		Version:         pluginVersion,
		Description:     "Sender reputation from an on-disk list, at MAIL FROM",
		ProtocolVersion: protocolVersion,
		Hooks:           []*pb.HookRegistration{{Hook: pb.Hook_HOOK_MAIL_FROM}},
		Priority:        50,
		FailurePolicy:   pb.FailurePolicy_FAILURE_POLICY_TEMPFAIL,
		Streaming:       true,
	}, nil
}

func (f *filter) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	conf, err := ParseConfig(req.ConfigJson)
	if err != nil {
		return &pb.ConfigureResponse{Error: err.Error()}, nil
	}
	// A relative path is relative to the catalog file's directory: the server starts us there.
	list, err := LoadReputationFile(conf.ListFile)
	if err != nil {
		return &pb.ConfigureResponse{Error: err.Error()}, nil
	}
	stop := make(chan struct{})
	go list.Watch(time.Duration(conf.ReloadIntervalS*float64(time.Second)), stop, f.log)
	f.mu.Lock()
	if f.stop != nil {
		close(f.stop)
	}
	f.conf, f.list, f.stop = conf, list, stop
	f.mu.Unlock()
	f.log.Infof("configured: %d entries from %s", list.Current().Entries(), conf.ListFile)
	return &pb.ConfigureResponse{}, nil
}

// handle answers one hook call; hooks this plugin did not register are answered CONTINUE.
func (f *filter) handle(req *pb.HookRequest) *pb.HookResponse {
	resp := &pb.HookResponse{Id: req.Id}
	if req.Hook != pb.Hook_HOOK_MAIL_FROM {
		resp.Result = &pb.Result{}
		return resp
	}
	f.mu.RLock()
	conf, list := f.conf, f.list
	f.mu.RUnlock()
	if list == nil {
		resp.Error = "not configured" // the server applies the failure policy
		return resp
	}
	resp.Result = Decide(&conf, list.Current(), req.Context)
	return resp
}

func (f *filter) HandleHook(ctx context.Context, req *pb.HookRequest) (*pb.HookResponse, error) {
	return f.handle(req), nil
}

// Hooks serves the stream: each request is handled in its own goroutine, so a slow call
// never holds up a quick one; answers carry the request's id. gRPC allows one sender at a
// time on a stream, hence the mutex.
func (f *filter) Hooks(stream pb.Plugin_HooksServer) error {
	var send sync.Mutex
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		wg.Add(1)
		go func(req *pb.HookRequest) {
			defer wg.Done()
			resp := f.handle(req)
			send.Lock()
			defer send.Unlock()
			if err := stream.Send(resp); err != nil {
				f.log.Warningf("cannot answer request %d: %v", req.Id, err)
			}
		}(req)
	}
}
