//! Recognises the end of a connection's first complete request in the bytes a client sends.
//!
//! HTTP/2 (gRPC, h2c): the 24-byte client preface followed by one whole frame, which the
//! protocol requires to be SETTINGS. HTTP/1: the blank line that ends the request head. The
//! body does not count: a trickled body is bounded by the idle and age limits instead. Only the
//! first bytes of a connection go through here; afterwards the detector is dropped.

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstRequest {
    /// Still reading bytes that might be the HTTP/2 preface; `matched` of them agree so far.
    Undecided { matched: usize },
    /// HTTP/2: reading the first frame's header (`header[..got]`).
    H2Header {
        header: [u8; FRAME_HEADER],
        got: usize,
    },
    /// HTTP/2: skipping the first frame's payload.
    H2Payload { remaining: usize },
    /// HTTP/1: `matched` bytes of `\r\n\r\n` seen at the end of the input so far.
    Http1 { matched: usize },
    /// The first request is complete.
    Complete,
}

impl Default for FirstRequest {
    fn default() -> Self {
        FirstRequest::Undecided { matched: 0 }
    }
}

impl FirstRequest {
    pub fn is_complete(&self) -> bool {
        matches!(self, FirstRequest::Complete)
    }

    /// Feeds bytes the client sent; returns whether the first request is now complete.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            *self = match std::mem::take(self) {
                FirstRequest::Undecided { matched } if PREFACE[matched] == b => {
                    if matched + 1 == PREFACE.len() {
                        FirstRequest::H2Header {
                            header: [0; FRAME_HEADER],
                            got: 0,
                        }
                    } else {
                        FirstRequest::Undecided {
                            matched: matched + 1,
                        }
                    }
                }
                // Not the preface: an HTTP/1 request head (whose start may have matched
                // "P..." as in "POST"; only its end matters here).
                FirstRequest::Undecided { .. } => Self::http1(0, b),
                FirstRequest::H2Header { mut header, got } => {
                    header[got] = b;
                    if got + 1 < FRAME_HEADER {
                        FirstRequest::H2Header {
                            header,
                            got: got + 1,
                        }
                    } else {
                        let length = (usize::from(header[0]) << 16)
                            | (usize::from(header[1]) << 8)
                            | usize::from(header[2]);
                        if length == 0 {
                            FirstRequest::Complete
                        } else {
                            FirstRequest::H2Payload { remaining: length }
                        }
                    }
                }
                FirstRequest::H2Payload { remaining } if remaining <= 1 => FirstRequest::Complete,
                FirstRequest::H2Payload { remaining } => FirstRequest::H2Payload {
                    remaining: remaining - 1,
                },
                FirstRequest::Http1 { matched } => Self::http1(matched, b),
                FirstRequest::Complete => FirstRequest::Complete,
            };
            if self.is_complete() {
                return true;
            }
        }
        false
    }

    fn http1(matched: usize, b: u8) -> FirstRequest {
        const END: &[u8; 4] = b"\r\n\r\n";
        if END[matched] == b {
            if matched + 1 == END.len() {
                FirstRequest::Complete
            } else {
                FirstRequest::Http1 {
                    matched: matched + 1,
                }
            }
        } else if b == b'\r' {
            FirstRequest::Http1 { matched: 1 }
        } else {
            FirstRequest::Http1 { matched: 0 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_frame(payload_len: usize) -> Vec<u8> {
        let mut f = vec![
            (payload_len >> 16) as u8,
            (payload_len >> 8) as u8,
            payload_len as u8,
            0x4,
            0,
            0,
            0,
            0,
            0,
        ];
        f.extend(std::iter::repeat_n(0u8, payload_len));
        f
    }

    #[test]
    fn http2_needs_preface_and_a_whole_settings_frame() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(settings_frame(12));
        let mut d = FirstRequest::default();
        // Byte by byte: complete only on the last payload byte.
        for (i, b) in bytes.iter().enumerate() {
            let done = d.feed(&[*b]);
            assert_eq!(done, i == bytes.len() - 1, "byte {i}");
        }
    }

    #[test]
    fn http2_preface_alone_is_not_a_request() {
        let mut d = FirstRequest::default();
        assert!(!d.feed(PREFACE));
        assert!(!d.feed(&settings_frame(6)[..8]));
    }

    #[test]
    fn empty_settings_frame_completes() {
        let mut d = FirstRequest::default();
        let mut bytes = PREFACE.to_vec();
        bytes.extend(settings_frame(0));
        assert!(d.feed(&bytes));
    }

    #[test]
    fn http1_completes_at_the_end_of_the_head() {
        let mut d = FirstRequest::default();
        assert!(!d.feed(b"POST /telnyx/webhook HTTP/1.1\r\nhost: x\r\n"));
        assert!(!d.feed(b"\r"));
        assert!(d.feed(b"\nbody"));
    }

    #[test]
    fn http1_split_terminator_and_false_starts() {
        let mut d = FirstRequest::default();
        assert!(!d.feed(b"GET /healthz HTTP/1.1\r\n\r"));
        assert!(!d.is_complete());
        let mut d2 = FirstRequest::default();
        assert!(!d2.feed(b"GET / HTTP/1.1\r\nA: b\r\r\n"));
        assert!(d2.feed(b"\r\n"));
    }

    #[test]
    fn garbage_never_completes_without_a_blank_line() {
        let mut d = FirstRequest::default();
        assert!(!d.feed(&[0u8; 4096]));
        assert!(!d.feed(b"PRI * HTTP/2.0\r\n"));
    }
}
