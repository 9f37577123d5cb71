package netguard

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// nflog reads the packets the refuse chains log to an NFLOG group, over a
// netfilter netlink socket, and hands each to a callback.
type nflog struct {
	fd     int
	group  uint16
	closed atomic.Bool
	busy   atomic.Bool // a batch is being handed to the callback
	wg     sync.WaitGroup
}

// sync waits, at most max, until every message queued on the socket has
// been handed to the callback: the kernel queues a refused packet's
// message when the packet is refused, so after sync every refusal that
// already happened is counted.
func (n *nflog) sync(max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		fds := []unix.PollFd{{Fd: int32(n.fd), Events: unix.POLLIN}}
		k, err := unix.Poll(fds, 0) // netlink sockets have no SIOCINQ; poll tells whether a message waits
		if err == nil && k == 0 && !n.busy.Load() {
			return
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// Netlink constants of nfnetlink_log (linux/netfilter/nfnetlink_log.h).
const (
	nfnlSubsysULOG   = 4
	nfulnlMsgPacket  = 0
	nfulnlMsgConfig  = 1
	nfulaCfgCmd      = 1
	nfulaCfgMode     = 2
	nfulaCfgTimeout  = 4 // NFULA_CFG_NLBUFSIZ is 3
	nfulaCfgQThresh  = 5
	nfulnlCfgCmdBind = 1
	nfulnlCopyPacket = 2
	nfulaPayload     = 9
	nfulaPrefix      = 10
)

type packetFunc func(reason string, src, dst netip.Addr, proto string, port int)

// openNflog binds a free NFLOG group (chosen at random) and starts reading it.
func openNflog(fn packetFunc) (*nflog, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind netlink: %w", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000}) // for the config acks
	n := &nflog{fd: fd}
	var bindErr error
	for try := 0; try < 20; try++ {
		g := uint16(1000 + rand.IntN(60000))
		if bindErr = n.config(g, nlattr(nfulaCfgCmd, []byte{nfulnlCfgCmdBind, 0, 0, 0}[:1])); bindErr != nil {
			continue
		}
		mode := make([]byte, 6)
		binary.BigEndian.PutUint32(mode, 128) // copy_range: enough for the IP and TCP/UDP headers
		mode[4] = nfulnlCopyPacket
		if bindErr = n.config(g, nlattr(nfulaCfgMode, mode)); bindErr != nil {
			continue
		}
		// Deliver each packet at once: the kernel's default batches up to 100 for a second.
		one := binary.BigEndian.AppendUint32(nil, 1)
		if bindErr = n.config(g, append(nlattr(nfulaCfgQThresh, one), nlattr(nfulaCfgTimeout, make([]byte, 4))...)); bindErr != nil {
			continue
		}
		n.group = g
		break
	}
	if n.group == 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("bind an NFLOG group: %w", bindErr)
	}
	n.wg.Add(1)
	go n.read(fn)
	return n, nil
}

func nlattr(typ uint16, data []byte) []byte {
	l := 4 + len(data)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[4:], data)
	return b
}

// config sends one NFULNL_MSG_CONFIG for group and waits for its ack.
func (n *nflog) config(group uint16, attrs []byte) error {
	body := make([]byte, 4, 4+len(attrs))
	body[0] = unix.AF_UNSPEC
	body[1] = 0 // NFNETLINK_V0
	binary.BigEndian.PutUint16(body[2:], group)
	body = append(body, attrs...)
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], nfnlSubsysULOG<<8|nfulnlMsgConfig)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], uint32(group))
	msg = append(msg, body...)
	if err := unix.Sendto(n.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		k, _, err := unix.Recvfrom(n.fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:k])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
					return unix.Errno(-code)
				}
				return nil
			}
		}
	}
}

func (n *nflog) read(fn packetFunc) {
	defer n.wg.Done()
	buf := make([]byte, 1<<16)
	for !n.closed.Load() {
		// Poll, then mark busy, then read: sync sees either bytes queued on
		// the socket or busy, never a message in flight that is neither.
		fds := []unix.PollFd{{Fd: int32(n.fd), Events: unix.POLLIN}}
		if k, err := unix.Poll(fds, 200); err != nil || k == 0 {
			continue
		}
		n.busy.Store(true)
		k, _, err := unix.Recvfrom(n.fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			n.busy.Store(false)
			continue
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:k])
		if err != nil {
			n.busy.Store(false)
			continue
		}
		for _, m := range msgs {
			if m.Header.Type != nfnlSubsysULOG<<8|nfulnlMsgPacket || len(m.Data) < 4 {
				continue
			}
			var prefix string
			var payload []byte
			for a := m.Data[4:]; len(a) >= 4; {
				l := int(binary.NativeEndian.Uint16(a[0:]))
				t := binary.NativeEndian.Uint16(a[2:]) & 0x3fff
				if l < 4 || l > len(a) {
					break
				}
				v := a[4:l]
				switch t {
				case nfulaPrefix:
					prefix = string(trimNul(v))
				case nfulaPayload:
					payload = v
				}
				a = a[min((l+3)&^3, len(a)):]
			}
			if src, dst, proto, port, ok := parseIPv4(payload); ok {
				fn(prefix, src, dst, proto, port)
			}
		}
		n.busy.Store(false)
	}
}

func trimNul(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// parseIPv4 reads the addresses, protocol and destination port of a packet.
func parseIPv4(p []byte) (src, dst netip.Addr, proto string, port int, ok bool) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return
	}
	ihl := int(p[0]&0x0f) * 4
	src = netip.AddrFrom4([4]byte(p[12:16]))
	dst = netip.AddrFrom4([4]byte(p[16:20]))
	switch p[9] {
	case 6:
		proto = "tcp"
	case 17:
		proto = "udp"
	case 1:
		proto = "icmp"
	default:
		proto = fmt.Sprintf("proto-%d", p[9])
	}
	if (p[9] == 6 || p[9] == 17) && len(p) >= ihl+4 {
		port = int(binary.BigEndian.Uint16(p[ihl+2:]))
	}
	return src, dst, proto, port, true
}

func (n *nflog) close() {
	if n.closed.Swap(true) {
		return
	}
	n.wg.Wait() // the poll times out within 200 ms
	unix.Close(n.fd)
}
