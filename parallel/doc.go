// Package parallel is logship's multi-stream transport: a session of N
// TCP streams between a client that ships windows of frames and a server
// that receives them, with the wire protocol of docs/protocol.md
// (version 2).
//
// It moves frames, not journal entries: a DATA frame is an opaque payload
// of at most MaxPayload bytes tagged with a window sequence number and an
// entry index. What the payload means is up to the upper layers.
//
// Client side:
//
//	s, err := parallel.Dial(ctx, "backup:7070", parallel.ClientConfig{Task: "db", PSK: key})
//	for each window w:
//		for each entry e of w:
//			s.SendFrame(ctx, parallel.Frame{Window: w, Entry: e.Index, Payload: e.Data})
//		s.EndWindow(ctx, w)
//	s.WaitAck(ctx, last)
//	s.Close()
//
// A DATA frame goes out on the stream with the fewest queued bytes. A
// window ends with a WINDOW_END frame on every stream, carrying that
// stream's and the whole window's frame and byte counts; the server
// declares the window complete only when all of them have arrived and
// the counts match, so a lost or duplicated frame fails the session
// instead of delivering a torn window.
//
// Server side:
//
//	l, err := parallel.Listen(":7070", parallel.ServerConfig{PSK: key, Handler: h})
//	s, err := l.Accept(ctx)
//	for {
//		w, err := s.Next(ctx)   // complete windows, strictly in order
//		apply(w.Frames); w.Release()
//		s.Ack(w.Seq)            // once durable
//	}
//
// Flow control: the server grants each session a byte credit
// (ServerConfig.Credit); the client blocks in SendFrame while its frames
// in flight would exceed it, and the credit of a window comes back only
// when the server calls Window.Release. Memory on both sides is bounded by
// the credit, whatever the amount of data.
//
// Control: Session.Call sends a request on stream 0 and returns the
// server Handler's reply.
//
// Security (docs/security.md): TLS 1.3 with client certificates
// (ServerTLS, ClientTLS); or pre-shared keys (LoadKeys, one named key per
// client), a challenge-response in both directions after which every byte
// is sealed with AES-256-GCM under keys derived per stream; or, on
// loopback only and when both sides ask for it, plaintext. Each peer has
// an identity (Session.Identity) and ServerConfig.Authorize decides which
// tasks it may use. Before a peer has authenticated the server reads only
// a HELLO and an AUTH frame, each refused from its header if it is
// anything else, and bounds such connections per source address and in
// all (ServerConfig.MaxPending, MaxPendingPerAddr); authenticated peers
// are bounded per identity. Listener.Stats counts the refusals.
//
// Errors are sticky: the first failure of any stream, a refused frame
// (bad checksum, oversize, unknown type, window mismatch, credit overrun:
// a *FrameError naming the stream and the frame), a *RemoteError from the
// peer, or Session.Fail ends the whole session; the peer is told with an
// ERROR frame, and every later call returns the same error. A dropped
// connection surfaces as a *StreamError (wrapping the net error) within
// the keepalive timeout at worst. The upper layer reconnects with a new
// session and resumes from the server's durable position.
//
// Every goroutine belongs to a Session or a Listener and is waited for by
// its Close.
package parallel
