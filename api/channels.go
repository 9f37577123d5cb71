package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/notify"
	"github.com/cronium/executor/secrets"
	"github.com/cronium/executor/store"
)

// channelBody is a user's channel as PUT /v1/channels/{name} takes it:
// webhook (url and secret) or slack (url). Email channels are the
// operator's: SMTP credentials live in the server's configuration.
type channelBody struct {
	Type   string `json:"type"`
	URL    string `json:"url"`
	Secret string `json:"secret"`
}

// ChannelInfo is a user's channel as the API shows it, secrets hidden.
type ChannelInfo struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	URL       string    `json:"url"` // scheme and host only: a Slack URL's path is its secret
	UpdatedAt time.Time `json:"updated_at"`
}

// ChannelAAD binds a sealed channel to its user and name.
func ChannelAAD(userID int64, name string) []byte {
	return []byte("channel/" + strconv.FormatInt(userID, 10) + "/" + name)
}

// OpenChannel returns a user's own channel, unsealed. Users' channels are
// never Trusted: they reach public addresses only, whatever the server
// allows its operator's channels.
func OpenChannel(ctx context.Context, st store.API, kr *secrets.Keyring, userID int64, name string) (notify.Channel, error) {
	sc, err := st.Channel(ctx, userID, name)
	if err != nil {
		return notify.Channel{}, err
	}
	if kr == nil {
		return notify.Channel{}, fmt.Errorf("%w: no master key to open channel %s", cronium.ErrUnavailable, name)
	}
	plain, err := kr.Open(sc.KeyID, sc.Blob, ChannelAAD(userID, name))
	if err != nil {
		return notify.Channel{}, fmt.Errorf("open channel %s: %w", name, err)
	}
	var ch notify.Channel
	if err := json.Unmarshal(plain, &ch); err != nil {
		return notify.Channel{}, fmt.Errorf("read channel %s: %w", name, err)
	}
	ch.Name, ch.Trusted = name, false
	return ch, nil
}

func (s *Server) putChannel(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	o, err := s.owner(r, u)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if s.cfg.Keyring == nil {
		return fmt.Errorf("%w: channels are disabled: no master key is configured (master_key_file or CRONIUM_MASTER_KEYS)", cronium.ErrUnavailable)
	}
	var b channelBody
	if err := decode(r, &b); err != nil {
		return err
	}
	switch {
	case b.Type == notify.Email:
		return cronium.Invalid("type", b.Type, "is the operator's: email channels are set in the server's configuration (notifications.channels), with their SMTP credentials; yours may be webhook or slack")
	case s.cfg.Channel != nil && s.cfg.Channel(o.Name, name) && !s.ownChannel(r.Context(), o, name):
		return cronium.Invalid("name", name, "is the name of one of the server's channels: choose another")
	}
	ch := notify.Channel{Name: name, Type: b.Type, URL: b.URL, Secret: b.Secret}
	if err := ch.Validate(""); err != nil {
		return err
	}
	plain, _ := json.Marshal(ch)
	keyID, blob, err := s.cfg.Keyring.Seal(plain, ChannelAAD(o.ID, name))
	if err != nil {
		return err
	}
	if err := s.cfg.Store.PutChannel(r.Context(), store.SealedChannel{UserID: o.ID, Name: name, Type: ch.Type, KeyID: keyID, Blob: blob}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ChannelInfo{Name: name, Type: ch.Type, URL: ch.Redacted().URL, UpdatedAt: time.Now().UTC()})
}

func (s *Server) ownChannel(ctx context.Context, o cronium.User, name string) bool {
	_, err := s.cfg.Store.Channel(ctx, o.ID, name)
	return err == nil
}

func (s *Server) listChannels(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	o, err := s.owner(r, u)
	if err != nil {
		return err
	}
	scs, err := s.cfg.Store.Channels(r.Context(), o.ID)
	if err != nil {
		return err
	}
	out := []ChannelInfo{}
	for _, sc := range scs {
		info := ChannelInfo{Name: sc.Name, Type: sc.Type, UpdatedAt: sc.UpdatedAt}
		if ch, err := OpenChannel(r.Context(), s.cfg.Store, s.cfg.Keyring, o.ID, sc.Name); err == nil {
			info.URL = ch.Redacted().URL
		}
		out = append(out, info)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"items": out})
}

func (s *Server) deleteChannel(w http.ResponseWriter, r *http.Request, u *cronium.User) error {
	o, err := s.owner(r, u)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	refs, err := s.referrers(r.Context(), o, func(ev cronium.Event) bool {
		for _, k := range ev.On.Kinds() {
			if slices.ContainsFunc(k.Actions, func(a cronium.Action) bool { return a.Notify == name }) {
				return true
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	if len(refs) > 0 {
		return fmt.Errorf("%w: channel %s is notified by event %s: remove it from their on: first", cronium.ErrConflict, name, strings.Join(refs, ", "))
	}
	ok, err := s.cfg.Store.DeleteChannel(r.Context(), o.ID, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: channel %s", cronium.ErrNotFound, name)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
