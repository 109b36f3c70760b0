//! `lbctl`'s presentation layer: pure functions from the control protocol's views to
//! the text tables it prints (think `ipvsadm -Ln --stats`), the per-second rates of
//! `lbctl list --rate`, and parsing of the flow given to `lbctl explain`. Nothing here
//! does I/O, so every view is unit-tested on canned data.

mod docs;
mod flow;
mod render;
mod table;

pub use docs::generate_docs;
pub use flow::parse_flow;
pub use render::{
    rates, render_bgp, render_conns, render_explain, render_health, render_list, render_rates,
    render_status, render_sync, render_vrrp, BackendRate, PerSecond, ServiceRate,
};

pub use lb_api::fmt::endpoint;

/// A rate or large quantity in short form: `950`, `12.5`, `1.2K`, `3.4M`, `5.0G`.
pub fn human(value: f64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")];
    if !value.is_finite() || value < 0.0 {
        return "-".into();
    }
    for (scale, unit) in UNITS {
        if value >= scale {
            return format!("{:.1}{unit}", value / scale);
        }
    }
    if value.fract() == 0.0 || value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// A duration in seconds, compactly: `42s`, `3m12s`, `2h05m`, `4d03h`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A latency in microseconds, compactly: `850us`, `1.2ms`, `2.50s`; `-` when unknown.
pub fn latency(us: Option<u64>) -> String {
    match us {
        None => "-".into(),
        Some(us) if us < 1_000 => format!("{us}us"),
        Some(us) if us < 1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        Some(us) => format!("{:.2}s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers_durations_latencies() {
        assert_eq!(human(0.0), "0");
        assert_eq!(human(0.5), "0.5");
        assert_eq!(human(950.0), "950");
        assert_eq!(human(1_250.0), "1.2K");
        assert_eq!(human(3_400_000.0), "3.4M");
        assert_eq!(human(-1.0), "-");
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(192), "3m12s");
        assert_eq!(duration(7_500), "2h05m");
        assert_eq!(duration(4 * 86_400 + 3 * 3_600), "4d03h");
        assert_eq!(latency(None), "-");
        assert_eq!(latency(Some(850)), "850us");
        assert_eq!(latency(Some(1_200)), "1.2ms");
        assert_eq!(latency(Some(2_500_000)), "2.50s");
    }
}
