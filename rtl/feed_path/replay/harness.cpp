// Verilator harness of the feed path's generated Verilog: whole captures at
// simulator speed.
//
// Reads a stimulus file written by rtl/feed_path/replay/stimulus.py (register
// writes, register reads, options, then every frame with its feed and error
// flag), configures the design over AXI-Lite, drives feed A and feed B at the
// same time, takes every record off m_axis and writes, into the output
// directory:
//   records.bin   per record: u8 tdest, u8 tuser seen, u16 length, the bytes
//   arrivals.bin  per payload reaching the sequencer: u64 (cycle << 1 | feed);
//                 a payload closed by tdrop (its frame dropped by the filter
//                 at its end, counted there) is not one
//   result.json   cycles, counts, stalls, register reads, timing, verdict
//
// Frames start in stimulus order (a frame's first beat never goes before the
// first beat of an earlier frame), each feed on its own input, so the feeds
// overlap the way a capture's copies do.  Which payload the sequencer
// arbitrates first depends on the filters' latency and on back-pressure, so
// the harness reads it off the filter -> sequencer handshakes (signals made
// readable by the generated Verilator config) rather than guessing.
//
// The port binding specific to one Verilog file lives in the generated
// replay_ports.h: tie-offs for ports this harness does not drive and the
// internal payload handshakes.
#include <cerrno>
#include <cstdarg>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <ctime>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "Vfeed_path.h"
#include "Vfeed_path___024root.h"
#include "verilated.h"

#include "replay_ports.h"

namespace {

constexpr char kMagic[8] = {'Z', 'M', 'R', 'E', 'P', 'L', 'A', 'Y'};
constexpr uint32_t kVersion = 1;
constexpr uint8_t kFlagError = 1;    // tuser high on error_beat
constexpr uint8_t kFlagBarrier = 2;  // start once the path is quiet; new statistics window
constexpr uint16_t kErrorOnLastBeat = 0xFFFF;
constexpr int kFeeds = 2;
constexpr int kResetCycles = 4;
// An AXI-Lite access the design does not answer within this many cycles is a hang.
constexpr uint64_t kAxilTimeout = 10000;

enum Exit { kOk = 0, kUsage = 2, kDeadlock = 3, kProtocol = 4 };

[[noreturn]] void die(int code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

void die(int code, const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    std::fputs("replay: ", stderr);
    std::vfprintf(stderr, fmt, args);
    std::fputc('\n', stderr);
    va_end(args);
    std::exit(code);
}

// Stimulus header, little-endian, packed as stimulus.py writes it.
struct __attribute__((packed)) Header {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    uint64_t seed;
    uint32_t source_pause;   // probability a free input stays idle a cycle, x 2**32
    uint32_t sink_pause;     // probability m_axis_tready is low a cycle, x 2**32 (max: always)
    uint64_t watchdog_cycles;
    uint64_t end_quiet_cycles;
    uint64_t max_cycles;     // 0: no limit
    uint32_t writes;
    uint32_t reads;
    uint64_t frames;
};

struct __attribute__((packed)) FrameHeader {
    uint8_t feed;
    uint8_t flags;
    uint16_t error_beat;
    uint32_t length;
};

struct Frame {
    const uint8_t* data;
    uint32_t length;
    uint16_t error_beat;
    uint8_t feed;
    uint8_t flags;
};

// xorshift64*: cheap, seeded, and the same on every machine.
struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL) {
        if (!state) state = 1;
    }
    uint32_t next() {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return static_cast<uint32_t>((state * 0x2545F4914F6CDD1DULL) >> 32);
    }
    // threshold = probability x 2**32; the largest value means always.
    bool chance(uint32_t threshold) {
        return threshold && (threshold == UINT32_MAX || next() < threshold);
    }
};

struct Stimulus {
    Header header;
    std::vector<std::pair<uint32_t, uint32_t>> writes;
    std::vector<uint32_t> reads;
    std::vector<Frame> frames;
};

Stimulus load(const char* path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die(kUsage, "cannot open %s: %s", path, std::strerror(errno));
    struct stat st;
    fstat(fd, &st);
    size_t size = static_cast<size_t>(st.st_size);
    if (size < sizeof(Header)) die(kUsage, "%s: too short for a stimulus header", path);
    // Frames point into the mapping, which stays for the whole run.
    auto* base = static_cast<const uint8_t*>(mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0));
    if (base == MAP_FAILED) die(kUsage, "cannot map %s: %s", path, std::strerror(errno));
    close(fd);
    madvise(const_cast<uint8_t*>(base), size, MADV_SEQUENTIAL);
    Stimulus s;
    std::memcpy(&s.header, base, sizeof(Header));
    if (std::memcmp(s.header.magic, kMagic, 8) || s.header.version != kVersion)
        die(kUsage, "%s: not a version %u replay stimulus", path, kVersion);
    size_t pos = s.header.header_bytes;
    auto need = [&](size_t n) {
        if (pos + n > size) die(kUsage, "%s: cut short at byte %zu", path, pos);
    };
    for (uint32_t i = 0; i < s.header.writes; i++) {
        uint32_t pair[2];
        need(8);
        std::memcpy(pair, base + pos, 8);
        pos += 8;
        s.writes.emplace_back(pair[0], pair[1]);
    }
    for (uint32_t i = 0; i < s.header.reads; i++) {
        uint32_t address;
        need(4);
        std::memcpy(&address, base + pos, 4);
        pos += 4;
        s.reads.push_back(address);
    }
    s.frames.reserve(s.header.frames);
    for (uint64_t i = 0; i < s.header.frames; i++) {
        FrameHeader fh;
        need(sizeof fh);
        std::memcpy(&fh, base + pos, sizeof fh);
        pos += sizeof fh;
        need(fh.length);
        if (fh.feed >= kFeeds || fh.length == 0)
            die(kUsage, "%s: frame %" PRIu64 " has feed %u, %u bytes", path, i, fh.feed, fh.length);
        s.frames.push_back(Frame{base + pos, fh.length, fh.error_beat, fh.feed, fh.flags});
        pos += fh.length;
    }
    if (pos != size) die(kUsage, "%s: %zu bytes after the last frame", path, size - pos);
    return s;
}

class Writer {
  public:
    explicit Writer(const std::string& path) : path_(path) {
        file_ = std::fopen(path.c_str(), "wb");
        if (!file_) die(kUsage, "cannot write %s: %s", path.c_str(), std::strerror(errno));
        std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
    }
    ~Writer() { close(); }
    void put(const void* data, size_t n) {
        if (std::fwrite(data, 1, n, file_) != n) die(kUsage, "writing %s failed", path_.c_str());
    }
    void close() {
        if (file_ && std::fclose(file_)) die(kUsage, "writing %s failed", path_.c_str());
        file_ = nullptr;
    }

  private:
    std::string path_;
    std::FILE* file_ = nullptr;
};

struct FeedState {
    std::vector<uint32_t> queue;  // indices into Stimulus::frames, this feed's frames in order
    size_t head = 0;              // next frame of the queue to start
    const Frame* frame = nullptr; // frame in flight
    uint32_t beat = 0;            // next beat of it
    uint32_t beats = 0;
    bool presenting = false;      // tvalid is high and held until taken
    uint64_t frames_sent = 0, beats_sent = 0;
    uint64_t stall_cycles = 0;    // tvalid high, tready low
    uint64_t window_frames = 0, window_beats = 0, window_stalls = 0;
    uint64_t window_first = 0, window_last = 0;
    uint64_t arrivals = 0;
};

class Harness {
  public:
    Harness(const Stimulus& stim, const std::string& out_dir)
        : stim_(stim), top_(std::make_unique<Vfeed_path>()), source_rng_{Rng(stim.header.seed), Rng(stim.header.seed + 1)},
          sink_rng_(stim.header.seed + 2), records_(out_dir + "/records.bin"),
          arrivals_(out_dir + "/arrivals.bin"), out_dir_(out_dir) {
        for (uint32_t i = 0; i < stim.frames.size(); i++) feeds_[stim.frames[i].feed].queue.push_back(i);
        record_.reserve(4096);
    }

    static double cpu_seconds() {
        timespec t;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
        return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
    }

    int run() {
        auto start = std::chrono::steady_clock::now();
        double cpu_start = cpu_seconds();
        idle_inputs();
        top_->rst = 1;
        for (int i = 0; i < kResetCycles; i++) tick_bare();
        top_->rst = 0;
        tick_bare();
        for (auto& w : stim_.writes) axil_write(w.first, w.second);
        configured_cycle_ = cycle_;
        int verdict = stream();
        uint64_t streamed = cycle_ - configured_cycle_;
        std::vector<std::pair<uint32_t, uint32_t>> read_back;
        if (verdict == kOk)
            for (uint32_t address : stim_.reads) read_back.push_back(axil_read(address));
        records_.close();
        arrivals_.close();
        double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        report(verdict, streamed, seconds, cpu_seconds() - cpu_start, read_back);
        top_->final();
        return verdict;
    }

  private:
    // -- clocking ------------------------------------------------------------------------
    void idle_inputs() {
        top_->s_axis_a_tvalid = 0;
        top_->s_axis_b_tvalid = 0;
        top_->m_axis_tready = 0;
        top_->s_axil_awvalid = 0;
        top_->s_axil_wvalid = 0;
        top_->s_axil_bready = 0;
        top_->s_axil_arvalid = 0;
        top_->s_axil_rready = 0;
        top_->s_axil_awprot = 0;
        top_->s_axil_arprot = 0;
        top_->s_axil_wstrb = 0xF;
        REPLAY_TIE_OFFS(top_);
    }

    void settle() {
        top_->clk = 0;
        top_->eval();
    }

    void rise() {
        top_->clk = 1;
        top_->eval();
        cycle_++;
    }

    void tick_bare() {
        settle();
        rise();
    }

    // -- AXI-Lite (one access at a time; streams idle) ------------------------------------
    void axil_write(uint32_t address, uint32_t value) {
        top_->s_axil_awaddr = address;
        top_->s_axil_wdata = value;
        top_->s_axil_awvalid = 1;
        top_->s_axil_wvalid = 1;
        top_->s_axil_bready = 1;
        bool aw = false, w = false;
        for (uint64_t waited = 0;; waited++) {
            if (waited > kAxilTimeout) die(kDeadlock, "AXI-Lite write to %#x not answered", address);
            settle();
            bool aw_fire = top_->s_axil_awvalid && top_->s_axil_awready;
            bool w_fire = top_->s_axil_wvalid && top_->s_axil_wready;
            bool b_fire = top_->s_axil_bvalid && (aw || aw_fire) && (w || w_fire);
            uint32_t resp = top_->s_axil_bresp;
            rise();
            aw |= aw_fire;
            w |= w_fire;
            if (aw) top_->s_axil_awvalid = 0;
            if (w) top_->s_axil_wvalid = 0;
            if (b_fire) {
                if (resp) die(kProtocol, "AXI-Lite write to %#x answered %u", address, resp);
                break;
            }
        }
        top_->s_axil_bready = 0;
    }

    std::pair<uint32_t, uint32_t> axil_read(uint32_t address) {
        top_->s_axil_araddr = address;
        top_->s_axil_arvalid = 1;
        top_->s_axil_rready = 1;
        bool ar = false;
        std::pair<uint32_t, uint32_t> result;
        for (uint64_t waited = 0;; waited++) {
            if (waited > kAxilTimeout) die(kDeadlock, "AXI-Lite read of %#x not answered", address);
            settle();
            bool ar_fire = top_->s_axil_arvalid && top_->s_axil_arready;
            bool r_fire = top_->s_axil_rvalid && (ar || ar_fire);
            result = {top_->s_axil_rdata, top_->s_axil_rresp};
            rise();
            ar |= ar_fire;
            if (ar) top_->s_axil_arvalid = 0;
            if (r_fire) break;
        }
        top_->s_axil_rready = 0;
        return result;
    }

    // -- streams ---------------------------------------------------------------------------
    bool frames_left() const {
        for (auto& f : feeds_)
            if (f.frame || f.head < f.queue.size()) return true;
        return false;
    }

    bool inputs_idle() const {
        for (auto& f : feeds_)
            if (f.frame) return false;
        return true;
    }

    // Put the next beat of feed f on its input, unless a pause or the start order says wait.
    void present(int f, bool quiet) {
        FeedState& s = feeds_[f];
        if (s.presenting) return;
        // The beat taken at the last edge is gone; valid falls unless another follows.
        if (f == 0) top_->s_axis_a_tvalid = 0; else top_->s_axis_b_tvalid = 0;
        if (!s.frame) {
            if (s.head >= s.queue.size()) return;
            uint32_t index = s.queue[s.head];
            if (index != next_start_) return;
            const Frame& frame = stim_.frames[index];
            if (frame.flags & kFlagBarrier) {
                if (!inputs_idle() || !quiet) return;
                open_window();
            }
            if (source_rng_[f].chance(stim_.header.source_pause)) return;
            s.frame = &frame;
            s.beat = 0;
            s.beats = (frame.length + 7) / 8;
            s.head++;
            next_start_++;
        } else if (source_rng_[f].chance(stim_.header.source_pause)) {
            return;
        }
        const Frame& frame = *s.frame;
        uint32_t offset = s.beat * 8;
        uint32_t bytes = frame.length - offset < 8 ? frame.length - offset : 8;
        uint64_t data = 0;
        std::memcpy(&data, frame.data + offset, bytes);  // little-endian host: byte 0 in lane 0
        bool last = s.beat + 1 == s.beats;
        bool error = (frame.flags & kFlagError) &&
                     (frame.error_beat == kErrorOnLastBeat ? last : frame.error_beat == s.beat);
        uint8_t keep = static_cast<uint8_t>((1u << bytes) - 1);
        if (f == 0) {
            top_->s_axis_a_tdata = data;
            top_->s_axis_a_tkeep = keep;
            top_->s_axis_a_tlast = last;
            top_->s_axis_a_tuser = error;
            top_->s_axis_a_tvalid = 1;
        } else {
            top_->s_axis_b_tdata = data;
            top_->s_axis_b_tkeep = keep;
            top_->s_axis_b_tlast = last;
            top_->s_axis_b_tuser = error;
            top_->s_axis_b_tvalid = 1;
        }
        s.presenting = true;
    }

    void open_window() {
        for (auto& s : feeds_) {
            s.window_frames = s.window_beats = s.window_stalls = 0;
            s.window_first = s.window_last = 0;
        }
        window_start_ = cycle_;
        window_records_ = 0;
        windows_++;
    }

    // The input handshake of feed f this cycle (sampled before the edge).
    void take(int f) {
        FeedState& s = feeds_[f];
        if (!s.presenting) return;
        bool ready = f == 0 ? top_->s_axis_a_tready : top_->s_axis_b_tready;
        if (!ready) {
            s.stall_cycles++;
            s.window_stalls++;
            return;
        }
        s.presenting = false;
        s.beats_sent++;
        s.window_beats++;
        if (!s.window_first) s.window_first = cycle_;
        s.window_last = cycle_;
        progress_cycle_ = cycle_;
        if (++s.beat == s.beats) {
            s.frame = nullptr;
            s.frames_sent++;
            s.window_frames++;
        }
    }

    void collect_output() {
        if (!(top_->m_axis_tvalid && top_->m_axis_tready)) return;
        progress_cycle_ = activity_cycle_ = cycle_;
        uint64_t data = top_->m_axis_tdata;
        unsigned keep = top_->m_axis_tkeep;
        unsigned bytes = 0;
        while (keep >> bytes) bytes++;  // highest kept lane + 1, as the fabric counts
        uint8_t dest = top_->m_axis_tdest;
        if (record_.empty()) record_dest_ = dest;
        else if (dest != record_dest_) record_dest_mixed_ = true;
        uint8_t lanes[8];
        std::memcpy(lanes, &data, 8);
        record_.insert(record_.end(), lanes, lanes + bytes);
        record_tuser_ |= top_->m_axis_tuser;
        if (!top_->m_axis_tlast) return;
        // tdest must hold over a record; bit 7 says it did not.
        uint8_t head[4] = {static_cast<uint8_t>(record_dest_ | (record_dest_mixed_ ? 0x80 : 0)),
                           record_tuser_, static_cast<uint8_t>(record_.size()),
                           static_cast<uint8_t>(record_.size() >> 8)};
        records_.put(head, 4);
        records_.put(record_.data(), record_.size());
        record_.clear();
        record_tuser_ = 0;
        record_dest_mixed_ = false;
        records_out_++;
        window_records_++;
    }

    void watch_payloads() {
        for (int f = 0; f < kFeeds; f++) {
            if (!REPLAY_PAYLOAD_VALID(top_, f)) continue;
            activity_cycle_ = cycle_;
            if (REPLAY_PAYLOAD_READY(top_, f) && REPLAY_PAYLOAD_LAST(top_, f) &&
                !REPLAY_PAYLOAD_DROP(top_, f)) {
                uint64_t word = cycle_ << 1 | static_cast<uint64_t>(f);
                arrivals_.put(&word, 8);
                feeds_[f].arrivals++;
            }
        }
        if (top_->m_axis_tvalid) activity_cycle_ = cycle_;
    }

    int stream() {
        const Header& h = stim_.header;
        activity_cycle_ = progress_cycle_ = cycle_;
        auto wall = std::chrono::steady_clock::now();
        uint64_t frames_total = stim_.frames.size();
        for (;;) {
            bool quiet = cycle_ - activity_cycle_ >= h.end_quiet_cycles;
            bool left = frames_left();
            if (!left && quiet) return kOk;
            for (int f = 0; f < kFeeds; f++) present(f, quiet);
            top_->m_axis_tready = !sink_rng_.chance(h.sink_pause);
            settle();
            for (int f = 0; f < kFeeds; f++) take(f);
            watch_payloads();
            collect_output();
            REPLAY_COUNT_EXTRA(top_, extra_);
            rise();
            // Frames waiting, or a path that never goes quiet, with no beat moving in
            // or out: a deadlock (a refill scan is far shorter than the watchdog).
            if (cycle_ - progress_cycle_ > h.watchdog_cycles) {
                deadlock_ = true;
                std::fprintf(stderr, "replay: no input or output beat for %" PRIu64
                             " cycles (%s): deadlock\n", h.watchdog_cycles,
                             left ? "frames left" : "path never drained");
                return kDeadlock;
            }
            if (h.max_cycles && cycle_ >= h.max_cycles) {
                std::fprintf(stderr, "replay: cycle limit %" PRIu64 " reached\n", h.max_cycles);
                return kDeadlock;
            }
            if ((cycle_ & 0xFFFFF) == 0) {
                auto now = std::chrono::steady_clock::now();
                if (std::chrono::duration<double>(now - wall).count() > 10.0) {
                    wall = now;
                    std::fprintf(stderr, "replay: cycle %" PRIu64 ", frames %" PRIu64 " of %" PRIu64
                                 ", records %" PRIu64 "\n", cycle_,
                                 feeds_[0].frames_sent + feeds_[1].frames_sent, frames_total,
                                 records_out_);
                }
            }
        }
    }

    void report(int verdict, uint64_t streamed, double seconds, double cpu,
                const std::vector<std::pair<uint32_t, uint32_t>>& read_back) {
        std::string path = out_dir_ + "/result.json";
        std::FILE* out = std::fopen(path.c_str(), "w");
        if (!out) die(kUsage, "cannot write %s", path.c_str());
        std::fprintf(out, "{\n \"verdict\": %d,\n \"deadlock\": %s,\n", verdict,
                     deadlock_ ? "true" : "false");
        std::fprintf(out, " \"cycles\": %" PRIu64 ",\n \"stream_cycles\": %" PRIu64 ",\n", cycle_,
                     streamed);
        std::fprintf(out, " \"seconds\": %.6f,\n \"cpu_seconds\": %.6f,\n \"records\": %" PRIu64 ",\n",
                     seconds, cpu, records_out_);
        std::fprintf(out, " \"feeds\": [");
        for (int f = 0; f < kFeeds; f++) {
            const FeedState& s = feeds_[f];
            std::fprintf(out, "%s\n  {\"frames\": %zu, \"frames_sent\": %" PRIu64 ", \"beats\": %" PRIu64
                         ", \"stall_cycles\": %" PRIu64 ", \"arrivals\": %" PRIu64 "}",
                         f ? "," : "", s.queue.size(), s.frames_sent, s.beats_sent, s.stall_cycles,
                         s.arrivals);
        }
        std::fprintf(out, "\n ],\n \"window\": {\"count\": %d, \"start\": %" PRIu64
                     ", \"records\": %" PRIu64 ", \"feeds\": [", windows_, window_start_, window_records_);
        for (int f = 0; f < kFeeds; f++) {
            const FeedState& s = feeds_[f];
            std::fprintf(out, "%s{\"frames\": %" PRIu64 ", \"beats\": %" PRIu64 ", \"stall_cycles\": %" PRIu64
                         ", \"first_beat\": %" PRIu64 ", \"last_beat\": %" PRIu64 "}",
                         f ? ", " : "", s.window_frames, s.window_beats, s.window_stalls,
                         s.window_first, s.window_last);
        }
        std::fprintf(out, "]},\n \"extra_streams\": {");
        for (size_t i = 0; i < kReplayExtraStreams; i++)
            std::fprintf(out, "%s\"%s\": %" PRIu64, i ? ", " : "", kReplayExtraStreamNames[i], extra_[i]);
        std::fprintf(out, "},\n \"reads\": [");
        for (size_t i = 0; i < read_back.size(); i++)
            std::fprintf(out, "%s[%u, %u]", i ? ", " : "", read_back[i].first, read_back[i].second);
        std::fprintf(out, "]\n}\n");
        std::fclose(out);
    }

    const Stimulus& stim_;
    std::unique_ptr<Vfeed_path> top_;
    FeedState feeds_[kFeeds];
    Rng source_rng_[kFeeds];
    Rng sink_rng_;
    Writer records_, arrivals_;
    std::string out_dir_;
    uint64_t cycle_ = 0, configured_cycle_ = 0;
    uint64_t activity_cycle_ = 0, progress_cycle_ = 0;
    uint32_t next_start_ = 0;
    std::vector<uint8_t> record_;
    uint8_t record_tuser_ = 0, record_dest_ = 0;
    bool record_dest_mixed_ = false;
    uint64_t records_out_ = 0;
    uint64_t window_start_ = 0, window_records_ = 0;
    int windows_ = 0;
    bool deadlock_ = false;
    uint64_t extra_[kReplayExtraStreams + 1] = {};
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) die(kUsage, "usage: %s STIMULUS OUT_DIR", argv[0]);
    Verilated::commandArgs(1, argv);
    Stimulus stim = load(argv[1]);
    Harness harness(stim, argv[2]);
    return harness.run();
}
