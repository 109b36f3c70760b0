//! Test- and bench-only data-plane API (the `testing` feature; lbd and lbctl are built
//! without it): running packets through the balancer with `BPF_PROG_TEST_RUN`,
//! unpinned attaches, raw connection-table and forwarding writes, and
//! [`BenchPrograms`], the bench's own XDP object (`lb-bench`: a MAC-swap baseline, a
//! traffic generator, a sink, a pass-only floor and a flow rotator), which is kept out
//! of the shipped object `lb`.

use std::time::Duration;

use aya::{
    maps::ProgramArray,
    programs::{ProgramFd, TestRun, TestRunAttrs, TestRunOptions, Xdp},
    Ebpf,
};
use lb_common::{
    bench::{programs as bench_names, ROTATE_NEXT},
    maps::{programs, DataplaneConfig},
};

use crate::{attach, AttachMode, AttachedMode, Dataplane, DataplaneError, Result};

/// The bench programs' object, built by build.rs next to `lb`.
pub(crate) static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-bench"));

/// The result of running a packet through `BPF_PROG_TEST_RUN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The XDP action returned.
    pub action: u32,
    /// The packet after the program ran.
    pub packet: Vec<u8>,
    /// Average run time per repetition, as the kernel measured it.
    pub duration_ns: u64,
}

fn program_err(name: &str) -> impl FnOnce(aya::programs::ProgramError) -> DataplaneError + '_ {
    move |source| DataplaneError::Program {
        name: name.into(),
        source,
    }
}

fn xdp<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a Xdp> {
    let program = ebpf
        .program(name)
        .ok_or_else(|| DataplaneError::Missing(format!("program {name}")))?;
    program.try_into().map_err(program_err(name))
}

fn xdp_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| DataplaneError::Missing(format!("program {name}")))?;
    program.try_into().map_err(program_err(name))
}

/// Run `packet` through `prog` (`name`) with `BPF_PROG_TEST_RUN`. `repeat` > 1 re-runs
/// the same buffer (edits accumulate) for timing.
fn test_run(prog: &Xdp, name: &str, packet: &[u8], repeat: u32) -> Result<TestRunOutput> {
    let mut out = vec![0u8; packet.len() + 256];
    let opts = TestRunOptions {
        data_in: Some(packet),
        data_out: Some(&mut out),
        repeat: repeat.max(1),
        ..TestRunOptions::default()
    };
    let result = prog.test_run(opts).map_err(program_err(name))?;
    out.truncate(result.data_size_out as usize);
    Ok(TestRunOutput {
        action: result.return_value,
        packet: out,
        duration_ns: result.duration.as_nanos() as u64,
    })
}

impl Dataplane {
    /// Run `packet` through the balancer with `BPF_PROG_TEST_RUN`, against the live
    /// maps. `repeat` > 1 re-runs the same buffer (edits accumulate) for timing.
    pub fn test_run(&self, packet: &[u8], repeat: u32) -> Result<TestRunOutput> {
        test_run(xdp(&self.ebpf, programs::LB)?, programs::LB, packet, repeat)
    }

    /// The loaded balancer program (for the bench's rotator to tail-call).
    pub fn program_fd(&self) -> Result<&ProgramFd> {
        xdp(&self.ebpf, programs::LB)?
            .fd()
            .map_err(program_err(programs::LB))
    }

    /// Attach the balancer to `interface` without a pinned link: it is detached when
    /// this value is dropped. [`AttachMode::Auto`] tries driver mode and falls back to
    /// skb mode, logging why.
    pub fn attach(&mut self, interface: &str, mode: AttachMode) -> Result<AttachedMode> {
        self.load_program(programs::LB)?;
        self.prepare_interface(interface)?;
        let prog = self.xdp_mut(programs::LB)?;
        let (link, got) = attach::attach(prog, interface, mode)?;
        self.attached.push((interface.to_string(), link, got));
        Ok(got)
    }

    /// Interfaces [`Dataplane::attach`] attached the balancer to, and how.
    pub fn attachments(&self) -> impl Iterator<Item = (&str, AttachedMode)> {
        self.attached.iter().map(|(i, _, m)| (i.as_str(), *m))
    }

    /// Switch forwarding of VIP traffic on (active) or off (pass to the kernel).
    pub fn set_forwarding(&mut self, on: bool) -> Result<()> {
        let config = DataplaneConfig {
            forwarding: on as u32,
            ..self.config()?
        };
        self.set_config(&config)
    }
}

/// A program of the bench object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchProgram {
    /// The baseline: swap the MACs, `XDP_TX`.
    MacSwap,
    /// The traffic generator (live frames; see `lb_common::bench`).
    Generator,
    /// The sink: drops generated frames, passes everything else.
    Sink,
    /// Passes everything (test labs: the bridge side of a veth whose peer sends
    /// `XDP_TX` frames; the per-packet bench's floor).
    Pass,
    /// Moves each frame to the next of many flows, then tail-calls the program set
    /// with [`BenchPrograms::rotate_into`].
    Rotate,
}

impl BenchProgram {
    /// Every bench program.
    pub const ALL: [BenchProgram; 5] = [
        BenchProgram::MacSwap,
        BenchProgram::Generator,
        BenchProgram::Sink,
        BenchProgram::Pass,
        BenchProgram::Rotate,
    ];

    /// Its name in the object.
    pub fn name(self) -> &'static str {
        match self {
            BenchProgram::MacSwap => bench_names::MACSWAP,
            BenchProgram::Generator => bench_names::GENERATOR,
            BenchProgram::Sink => bench_names::SINK,
            BenchProgram::Pass => bench_names::PASS,
            BenchProgram::Rotate => bench_names::ROTATE,
        }
    }
}

/// The bench object loaded, every program in the kernel. Their one map is the
/// rotator's program array.
pub struct BenchPrograms {
    ebpf: Ebpf,
    /// Unpinned attachments: they end with this value.
    attached: Vec<aya::programs::xdp::XdpLinkId>,
}

impl BenchPrograms {
    /// Load the bench object and its programs.
    pub fn load() -> Result<Self> {
        let mut ebpf = Ebpf::load(BENCH_OBJECT)?;
        for program in BenchProgram::ALL {
            xdp_mut(&mut ebpf, program.name())?
                .load()
                .map_err(program_err(program.name()))?;
        }
        Ok(BenchPrograms {
            ebpf,
            attached: Vec::new(),
        })
    }

    /// Make the rotator hand its frames to `next` (the balancer's
    /// [`Dataplane::program_fd`]); `None`: to this object's `lb_pass`, the floor.
    pub fn rotate_into(&mut self, next: Option<&ProgramFd>) -> Result<()> {
        let pass;
        let next = match next {
            Some(fd) => fd,
            None => {
                pass = xdp(&self.ebpf, bench_names::PASS)?
                    .fd()
                    .map_err(program_err(bench_names::PASS))?
                    .try_clone()
                    .map_err(|e| DataplaneError::Missing(format!("a program fd: {e}")))?;
                &pass
            }
        };
        let map = self
            .ebpf
            .map_mut(ROTATE_NEXT)
            .ok_or_else(|| DataplaneError::Missing(format!("map {ROTATE_NEXT}")))?;
        let mut array: ProgramArray<_> =
            ProgramArray::try_from(map).map_err(crate::map_err(ROTATE_NEXT))?;
        array.set(0, next, 0).map_err(crate::map_err(ROTATE_NEXT))
    }

    /// Run `packet` through `program` with `BPF_PROG_TEST_RUN` (see
    /// [`Dataplane::test_run`]).
    pub fn test_run(
        &self,
        program: BenchProgram,
        packet: &[u8],
        repeat: u32,
    ) -> Result<TestRunOutput> {
        test_run(
            xdp(&self.ebpf, program.name())?,
            program.name(),
            packet,
            repeat,
        )
    }

    /// Attach `program` to `interface` (detached when this value is dropped).
    pub fn attach(
        &mut self,
        program: BenchProgram,
        interface: &str,
        mode: AttachMode,
    ) -> Result<AttachedMode> {
        let prog = xdp_mut(&mut self.ebpf, program.name())?;
        let (link, got) = attach::attach(prog, interface, mode)?;
        self.attached.push(link);
        Ok(got)
    }

    /// Run the generator in live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`): `count`
    /// frames made from `frame` go through it as if received on `ingress_ifindex` (in
    /// the calling thread's network namespace), and the frames it returns `XDP_TX` for
    /// are really transmitted there. Returns the time the kernel spent.
    pub fn send_live_frames(
        &self,
        frame: &[u8],
        count: u32,
        ingress_ifindex: u32,
    ) -> Result<Duration> {
        /// Live frames are generated in batches of this many.
        const BATCH: u32 = 64;
        let name = BenchProgram::Generator.name();
        let prog = xdp(&self.ebpf, name)?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex (six u32).
        let md: [u32; 6] = [0, frame.len() as u32, 0, ingress_ifindex, 0, 0];
        let ctx: Vec<u8> = md.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let opts = TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx),
            repeat: count.max(1),
            attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
            ..TestRunOptions::default()
        };
        let result = prog.test_run(opts).map_err(program_err(name))?;
        // The kernel reports the average per frame.
        Ok(result.duration * count.max(1))
    }
}
