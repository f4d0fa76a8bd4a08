//! Sliding replay window over 48-bit SRTP or 31-bit SRTCP indexes (RFC 3711 §3.3.2).

/// Width of the window: indexes more than this far below the highest accepted one are refused.
pub const WINDOW: u64 = 128;

/// Replay state of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest accepted index, `None` before the first packet.
    top: Option<u64>,
    /// Bit i set: index `top - i` was accepted.
    seen: u128,
}

impl ReplayWindow {
    /// Whether `index` would be accepted (not seen, not too old).
    pub fn is_fresh(&self, index: u64) -> bool {
        match self.top {
            None => true,
            Some(top) if index > top => true,
            Some(top) => {
                let back = top - index;
                back < WINDOW && self.seen & (1u128 << back) == 0
            }
        }
    }

    /// Records `index` as accepted. Call only after `is_fresh` and authentication.
    pub fn accept(&mut self, index: u64) {
        match self.top {
            Some(top) if index <= top => {
                let back = top - index;
                if back < WINDOW {
                    self.seen |= 1u128 << back;
                }
            }
            Some(top) => {
                let shift = index - top;
                self.seen = if shift >= WINDOW {
                    0
                } else {
                    self.seen << shift
                };
                self.seen |= 1;
                self.top = Some(index);
            }
            None => {
                self.seen = 1;
                self.top = Some(index);
            }
        }
    }

    /// Highest accepted index.
    pub fn top(&self) -> Option<u64> {
        self.top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_refuses_repeats_and_old_indexes() {
        let mut w = ReplayWindow::default();
        for i in [10u64, 12, 11, 200] {
            assert!(w.is_fresh(i));
            w.accept(i);
            assert!(!w.is_fresh(i));
        }
        assert!(!w.is_fresh(200 - WINDOW));
        assert!(w.is_fresh(200 - WINDOW + 1));
        assert!(!w.is_fresh(12));
    }
}
