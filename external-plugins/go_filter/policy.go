package main

// The policy: the catalog entry's config, and what a sender's score means at MAIL FROM.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	pb "elemta/plugin/v1"
)

// Config is the catalog entry's `config` table; unknown keys are refused.
type Config struct {
	ListFile        string  `json:"list_file"`         // relative to the plugin's directory
	RejectAt        int     `json:"reject_at"`         // score <= this: 550 5.7.1
	TempfailAt      int     `json:"tempfail_at"`       // score <= this: 450 4.7.1
	TrustAt         int     `json:"trust_at"`          // score >= this: tag sender.trusted=yes
	ReloadIntervalS float64 `json:"reload_interval_s"` // how often the list file is checked
}

// DefaultConfig is what an empty `config` table means.
func DefaultConfig() Config {
	return Config{ListFile: "reputation.txt", RejectAt: -50, TempfailAt: -20, TrustAt: 50,
		ReloadIntervalS: 1}
}

// ParseConfig reads the JSON the server sends in Configure; an error refuses the launch.
func ParseConfig(raw string) (Config, error) {
	c := DefaultConfig()
	if raw != "" {
		dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("config: %v (keys: list_file, reject_at, tempfail_at, "+
				"trust_at, reload_interval_s)", err)
		}
	}
	switch {
	case c.ListFile == "":
		return c, fmt.Errorf("config: list_file is empty; name the reputation list file")
	case c.RejectAt > c.TempfailAt:
		return c, fmt.Errorf("config: reject_at (%d) must not be above tempfail_at (%d)",
			c.RejectAt, c.TempfailAt)
	case c.TrustAt <= c.TempfailAt:
		return c, fmt.Errorf("config: trust_at (%d) must be above tempfail_at (%d)",
			c.TrustAt, c.TempfailAt)
	case c.ReloadIntervalS <= 0:
		return c, fmt.Errorf("config: reload_interval_s must be positive")
	}
	return c, nil
}

// Decide judges the sender of one MAIL FROM. The null sender (bounces) is never judged:
// refusing it would lose delivery status notifications.
func Decide(c *Config, rep *Reputation, ctx *pb.Context) *pb.Result {
	if ctx == nil || !ctx.HasMailFrom || ctx.MailFrom == "" {
		return &pb.Result{}
	}
	score, listed := rep.Lookup(ctx.MailFrom)
	if !listed {
		return &pb.Result{}
	}
	tags := map[string]string{"sender.reputation": strconv.Itoa(score)}
	switch {
	case score <= c.RejectAt:
		return &pb.Result{Action: pb.Action_ACTION_REJECT, Code: 550, Enhanced: "5.7.1",
			Text: "Sender address has a poor reputation", Tags: tags,
			Reason: fmt.Sprintf("reputation %d <= reject_at %d", score, c.RejectAt)}
	case score <= c.TempfailAt:
		return &pb.Result{Action: pb.Action_ACTION_TEMPFAIL, Code: 450, Enhanced: "4.7.1",
			Text: "Sender address is under observation, try again later", Tags: tags,
			Reason: fmt.Sprintf("reputation %d <= tempfail_at %d", score, c.TempfailAt)}
	case score >= c.TrustAt:
		tags["sender.trusted"] = "yes"
	}
	return &pb.Result{Tags: tags}
}
