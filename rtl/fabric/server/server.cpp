// The fabric's generated Verilog under Verilator as a long-lived process: the
// simulator behind host.runtime.rtl_fabric.RtlFabric.
//
// Commands come on stdin, answers go to stdout, both as messages of
//   u32 length (of what follows), u8 code, payload      (little-endian)
// A command's code is its opcode; an answer's is kOk or kError (payload: the
// message).  rtl/fabric/server/client.py is the other side and documents
// every payload; the opcodes and layouts here must match it.
//
// The clock only advances inside a command.  Every cycle, whatever the
// command, the host stream m_axis is taken (tready high unless the run's
// sink pause says otherwise) and each record is kept with the cycles of its
// first and last beats until a RUN answer hands them over.  Frames queue
// until a RUN drives them, each on its feed's input, in queue order; in
// serial mode a frame starts only once the fabric is idle.  Idle means: no
// frame in flight, nothing valid on m_axis and no handshake on any port for
// the run's quiet cycles, and then every idle probe register (address,
// mask) reads back with the mask bits clear -- the register map's busy
// bits, which cover work that moves nothing for a long time (the book's
// order-table scans).
#include <cerrno>
#include <cstdarg>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "Vfabric.h"
#include "verilated.h"

namespace {

enum Op : uint8_t {
    kQuit = 0,
    kReset = 1,
    kWrite = 2,
    kRead = 3,
    kFrames = 4,
    kRun = 5,
    kProbes = 6,
    kCycle = 7,
};
enum Answer : uint8_t { kOk = 0, kError = 1 };
enum RunMode : uint8_t { kStream = 0, kSerial = 1 };

constexpr int kFeeds = 2;
// An AXI-Lite access not answered in this many cycles is a hang.
constexpr uint64_t kAxilTimeout = 10000;

struct Failure {
    std::string message;
};

[[noreturn]] void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

void fail(const char* fmt, ...) {
    char text[512];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    throw Failure{text};
}

// -- message framing on the pipes -----------------------------------------------------------
bool read_exact(void* buffer, size_t n) {
    auto* p = static_cast<uint8_t*>(buffer);
    while (n) {
        ssize_t got = ::read(0, p, n);
        if (got == 0) return false;
        if (got < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += got;
        n -= static_cast<size_t>(got);
    }
    return true;
}

void write_exact(const void* buffer, size_t n) {
    auto* p = static_cast<const uint8_t*>(buffer);
    while (n) {
        ssize_t put = ::write(1, p, n);
        if (put < 0) {
            if (errno == EINTR) continue;
            std::exit(1);  // the client is gone
        }
        p += put;
        n -= static_cast<size_t>(put);
    }
}

class Out {
  public:
    template <typename T>
    void put(T value) {
        bytes_.insert(bytes_.end(), reinterpret_cast<uint8_t*>(&value),
                      reinterpret_cast<uint8_t*>(&value) + sizeof value);
    }
    void put_bytes(const uint8_t* data, size_t n) { bytes_.insert(bytes_.end(), data, data + n); }
    void send(uint8_t code) const {
        uint32_t length = static_cast<uint32_t>(bytes_.size() + 1);
        write_exact(&length, 4);
        write_exact(&code, 1);
        if (!bytes_.empty()) write_exact(bytes_.data(), bytes_.size());
    }

  private:
    std::vector<uint8_t> bytes_;
};

class In {
  public:
    In(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    template <typename T>
    T get() {
        T value;
        need(sizeof value);
        std::memcpy(&value, data_ + pos_, sizeof value);
        pos_ += sizeof value;
        return value;
    }
    const uint8_t* take(size_t n) {
        need(n);
        const uint8_t* p = data_ + pos_;
        pos_ += n;
        return p;
    }
    bool done() const { return pos_ == size_; }

  private:
    void need(size_t n) const {
        if (pos_ + n > size_) fail("command payload cut short at byte %zu", pos_);
    }
    const uint8_t* data_;
    size_t size_, pos_ = 0;
};

// xorshift64*: seeded pauses, the same on every machine.
struct Rng {
    uint64_t state = 1;
    void seed(uint64_t s) {
        state = s * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
        if (!state) state = 1;
    }
    uint32_t next() {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return static_cast<uint32_t>((state * 0x2545F4914F6CDD1DULL) >> 32);
    }
    bool chance(uint32_t threshold) {
        return threshold && (threshold == UINT32_MAX || next() < threshold);
    }
};

struct Frame {
    std::vector<uint8_t> data;
    uint8_t feed;
    bool error;
};

struct Record {
    std::vector<uint8_t> data;
    uint64_t first_cycle = 0, last_cycle = 0;
    uint8_t dest = 0;
    bool mixed_dest = false, user = false;
};

struct Probe {
    uint32_t address, mask;
};

class Server {
  public:
    Server() : top_(std::make_unique<Vfabric>()) {
        top_->clk = 0;
        idle_inputs();
    }

    ~Server() { top_->final(); }

    // One command; false when the client asked to quit.
    bool serve(uint8_t op, In& in, Out& out) {
        switch (op) {
            case kQuit:
                return false;
            case kReset:
                reset(in.get<uint32_t>());
                out.put<uint64_t>(cycle_);
                break;
            case kWrite:
                while (!in.done()) {
                    uint32_t address = in.get<uint32_t>();
                    uint32_t value = in.get<uint32_t>();
                    out.put<uint8_t>(axil_write(address, value));
                }
                break;
            case kRead:
                while (!in.done()) {
                    auto result = axil_read(in.get<uint32_t>());
                    out.put<uint32_t>(result.first);
                    out.put<uint8_t>(result.second);
                }
                break;
            case kFrames:
                while (!in.done()) {
                    uint8_t feed = in.get<uint8_t>();
                    uint8_t error = in.get<uint8_t>();
                    in.get<uint16_t>();
                    uint32_t length = in.get<uint32_t>();
                    if (feed >= kFeeds) fail("frame for feed %u: 0 (A) or 1 (B)", feed);
                    if (!length) fail("a frame has at least one byte");
                    const uint8_t* data = in.take(length);
                    frames_.push_back(Frame{std::vector<uint8_t>(data, data + length), feed, error != 0});
                }
                break;
            case kProbes:
                probes_.clear();
                while (!in.done()) {
                    uint32_t address = in.get<uint32_t>();
                    uint32_t mask = in.get<uint32_t>();
                    probes_.push_back(Probe{address, mask});
                }
                break;
            case kRun:
                run(in, out);
                break;
            case kCycle:
                out.put<uint64_t>(cycle_);
                break;
            default:
                fail("unknown command %u", op);
        }
        if (!in.done()) fail("command %u has trailing bytes", op);
        return true;
    }

  private:
    // -- clocking ------------------------------------------------------------------------
    void idle_inputs() {
        top_->s_axis_a_tvalid = 0;
        top_->s_axis_b_tvalid = 0;
        top_->m_axis_tready = 1;
        top_->s_axil_awvalid = 0;
        top_->s_axil_wvalid = 0;
        top_->s_axil_bready = 0;
        top_->s_axil_arvalid = 0;
        top_->s_axil_rready = 0;
        top_->s_axil_awprot = 0;
        top_->s_axil_arprot = 0;
        top_->s_axil_wstrb = 0xF;
    }

    void reset(uint32_t cycles) {
        frames_.clear();
        next_frame_ = 0;
        for (auto& f : feeds_) f = FeedState{};
        record_ = Record{};
        records_.clear();
        frame_last_.clear();
        idle_inputs();
        top_->rst = 1;
        for (uint32_t i = 0; i < (cycles ? cycles : 1); i++) step();
        top_->rst = 0;
        step();
        quiet_ = 0;
    }

    // One clock cycle: inputs as set, handshakes sampled before the edge.  An
    // input whose beat was taken shows nothing until present() puts up the
    // next one, so no beat is taken twice whatever command is running.
    void step() {
        for (int f = 0; f < kFeeds; f++)
            if (!feeds_[f].presenting) set_valid(f, false);
        top_->m_axis_tready = !sink_rng_.chance(sink_pause_);
        top_->clk = 0;
        top_->eval();
        bool moved = false;
        for (int f = 0; f < kFeeds; f++) moved |= take_input(f);
        moved |= collect_output();
        moved |= (top_->s_axil_awvalid && top_->s_axil_awready) ||
                 (top_->s_axil_arvalid && top_->s_axil_arready) ||
                 (top_->s_axil_bvalid && top_->s_axil_bready) ||
                 (top_->s_axil_rvalid && top_->s_axil_rready);
        bool busy = moved || top_->m_axis_tvalid || feeds_[0].frame || feeds_[1].frame;
        quiet_ = busy ? 0 : quiet_ + 1;
        top_->clk = 1;
        top_->eval();
        cycle_++;
        if (max_cycle_ && cycle_ > max_cycle_)
            fail("no idle fabric within the run's cycle limit (cycle %" PRIu64 ")", cycle_);
    }

    // -- AXI-Lite, one access at a time ---------------------------------------------------------
    uint8_t axil_write(uint32_t address, uint32_t value) {
        top_->s_axil_awaddr = address;
        top_->s_axil_wdata = value;
        top_->s_axil_awvalid = 1;
        top_->s_axil_wvalid = 1;
        top_->s_axil_bready = 1;
        bool aw = false, w = false;
        for (uint64_t waited = 0;; waited++) {
            if (waited > kAxilTimeout) fail("AXI-Lite write to %#x not answered", address);
            top_->clk = 0;
            top_->eval();
            bool aw_fire = top_->s_axil_awvalid && top_->s_axil_awready;
            bool w_fire = top_->s_axil_wvalid && top_->s_axil_wready;
            bool b_fire = top_->s_axil_bvalid && (aw || aw_fire) && (w || w_fire);
            uint8_t resp = top_->s_axil_bresp;
            step();
            aw |= aw_fire;
            w |= w_fire;
            if (aw) top_->s_axil_awvalid = 0;
            if (w) top_->s_axil_wvalid = 0;
            if (b_fire) {
                top_->s_axil_bready = 0;
                return resp;
            }
        }
    }

    std::pair<uint32_t, uint8_t> axil_read(uint32_t address) {
        top_->s_axil_araddr = address;
        top_->s_axil_arvalid = 1;
        top_->s_axil_rready = 1;
        bool ar = false;
        for (uint64_t waited = 0;; waited++) {
            if (waited > kAxilTimeout) fail("AXI-Lite read of %#x not answered", address);
            top_->clk = 0;
            top_->eval();
            bool ar_fire = top_->s_axil_arvalid && top_->s_axil_arready;
            bool r_fire = top_->s_axil_rvalid && (ar || ar_fire);
            std::pair<uint32_t, uint8_t> result{top_->s_axil_rdata, top_->s_axil_rresp};
            step();
            ar |= ar_fire;
            if (ar) top_->s_axil_arvalid = 0;
            if (r_fire) {
                top_->s_axil_rready = 0;
                return result;
            }
        }
    }

    // -- streams ---------------------------------------------------------------------------
    struct FeedState {
        const Frame* frame = nullptr;
        uint32_t beat = 0, beats = 0;
        size_t index = 0;
        bool presenting = false;
    };

    void present(int f) {
        FeedState& s = feeds_[f];
        if (s.presenting || !s.frame) return;
        if (source_rng_.chance(source_pause_)) {
            set_valid(f, false);
            return;
        }
        const Frame& frame = *s.frame;
        uint32_t offset = s.beat * 8;
        uint32_t bytes = static_cast<uint32_t>(frame.data.size()) - offset;
        if (bytes > 8) bytes = 8;
        uint64_t data = 0;
        std::memcpy(&data, frame.data.data() + offset, bytes);  // byte 0 in lane 0
        bool last = s.beat + 1 == s.beats;
        uint8_t keep = static_cast<uint8_t>((1u << bytes) - 1);
        if (f == 0) {
            top_->s_axis_a_tdata = data;
            top_->s_axis_a_tkeep = keep;
            top_->s_axis_a_tlast = last;
            top_->s_axis_a_tuser = frame.error && last;
        } else {
            top_->s_axis_b_tdata = data;
            top_->s_axis_b_tkeep = keep;
            top_->s_axis_b_tlast = last;
            top_->s_axis_b_tuser = frame.error && last;
        }
        set_valid(f, true);
        s.presenting = true;
    }

    void set_valid(int f, bool valid) {
        if (f == 0) top_->s_axis_a_tvalid = valid;
        else top_->s_axis_b_tvalid = valid;
    }

    bool take_input(int f) {
        FeedState& s = feeds_[f];
        if (!s.presenting) return false;
        bool ready = f == 0 ? top_->s_axis_a_tready : top_->s_axis_b_tready;
        if (!ready) return false;
        s.presenting = false;
        if (++s.beat == s.beats) {
            frame_last_.push_back({s.index, cycle_});
            s.frame = nullptr;
        }
        return true;
    }

    // Before a cycle of a run: the next beat of each frame in flight goes up.
    void refresh_inputs() {
        for (int f = 0; f < kFeeds; f++) present(f);
    }

    bool start_frame() {
        if (next_frame_ >= frames_.size()) return false;
        const Frame& frame = frames_[next_frame_];
        FeedState& s = feeds_[frame.feed];
        if (s.frame) return false;
        s.frame = &frame;
        s.beat = 0;
        s.beats = static_cast<uint32_t>((frame.data.size() + 7) / 8);
        s.index = next_frame_++;
        return true;
    }

    bool collect_output() {
        if (top_->m_axis_tvalid && record_.data.empty() && !record_open_) {
            record_open_ = true;
            record_.first_cycle = cycle_;
            record_.dest = top_->m_axis_tdest;
        }
        if (!(top_->m_axis_tvalid && top_->m_axis_tready)) return false;
        uint64_t data = top_->m_axis_tdata;
        unsigned keep = top_->m_axis_tkeep, bytes = 0;
        while (keep >> bytes) bytes++;  // highest kept lane + 1, as the fabric counts
        uint8_t lanes[8];
        std::memcpy(lanes, &data, 8);
        record_.data.insert(record_.data.end(), lanes, lanes + bytes);
        record_.mixed_dest |= top_->m_axis_tdest != record_.dest;
        record_.user |= top_->m_axis_tuser;
        if (top_->m_axis_tlast) {
            record_.last_cycle = cycle_;
            records_.push_back(std::move(record_));
            record_ = Record{};
            record_open_ = false;
        }
        return true;
    }

    // Run until quiet_cycles quiet cycles, then read the probes; true when idle.
    bool settle_idle(uint32_t quiet_cycles) {
        while (quiet_ < quiet_cycles) {
            refresh_inputs();
            step();
        }
        for (const Probe& p : probes_) {
            auto value = axil_read(p.address);
            if (value.second || (value.first & p.mask)) {
                quiet_ = 0;
                return false;
            }
        }
        return true;
    }

    void run(In& in, Out& out) {
        uint8_t mode = in.get<uint8_t>();
        uint32_t quiet_cycles = in.get<uint32_t>();
        uint64_t max_cycles = in.get<uint64_t>();
        sink_pause_ = in.get<uint32_t>();
        source_pause_ = in.get<uint32_t>();
        uint64_t seed = in.get<uint64_t>();
        if (mode != kStream && mode != kSerial) fail("run mode %u", mode);
        if (quiet_cycles < 2) fail("quiet cycles below 2");
        sink_rng_.seed(seed);
        source_rng_.seed(seed + 1);
        max_cycle_ = max_cycles ? cycle_ + max_cycles : 0;
        uint64_t start = cycle_;
        try {
            for (;;) {
                if (mode == kSerial) {
                    if (next_frame_ < frames_.size()) {
                        while (!settle_idle(quiet_cycles)) {
                        }
                        start_frame();
                    }
                } else {
                    while (start_frame()) {
                    }
                }
                bool left = next_frame_ < frames_.size() || feeds_[0].frame || feeds_[1].frame;
                if (!left && settle_idle(quiet_cycles)) break;
                refresh_inputs();
                step();
            }
        } catch (...) {
            max_cycle_ = 0;
            sink_pause_ = source_pause_ = 0;
            throw;
        }
        max_cycle_ = 0;
        sink_pause_ = source_pause_ = 0;
        out.put<uint64_t>(start);
        out.put<uint64_t>(cycle_);
        out.put<uint32_t>(static_cast<uint32_t>(frame_last_.size()));
        for (auto& fl : frame_last_) {
            out.put<uint64_t>(fl.first);
            out.put<uint64_t>(fl.second);
        }
        out.put<uint32_t>(static_cast<uint32_t>(records_.size()));
        for (auto& r : records_) {
            out.put<uint8_t>(r.dest);
            out.put<uint8_t>(static_cast<uint8_t>((r.user ? 1 : 0) | (r.mixed_dest ? 2 : 0)));
            out.put<uint16_t>(static_cast<uint16_t>(r.data.size()));
            out.put<uint64_t>(r.first_cycle);
            out.put<uint64_t>(r.last_cycle);
            out.put_bytes(r.data.data(), r.data.size());
        }
        records_.clear();
        frame_last_.clear();
        frames_.clear();
        next_frame_ = 0;
    }

    std::unique_ptr<Vfabric> top_;
    std::vector<Frame> frames_;
    size_t next_frame_ = 0;
    FeedState feeds_[kFeeds];
    std::vector<std::pair<uint64_t, uint64_t>> frame_last_;  // (frame index, cycle of its last beat)
    Record record_;
    bool record_open_ = false;
    std::vector<Record> records_;
    std::vector<Probe> probes_;
    Rng sink_rng_, source_rng_;
    uint32_t sink_pause_ = 0, source_pause_ = 0;
    uint64_t cycle_ = 0, quiet_ = 0, max_cycle_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    Server server;
    std::vector<uint8_t> buffer;
    for (;;) {
        uint32_t length;
        if (!read_exact(&length, 4)) return 0;  // the client closed the pipe
        if (length == 0 || length > (1u << 30)) {
            Out out;
            const char* text = "bad message length";
            out.put_bytes(reinterpret_cast<const uint8_t*>(text), std::strlen(text));
            out.send(kError);
            return 2;
        }
        buffer.resize(length);
        if (!read_exact(buffer.data(), length)) return 0;
        In in(buffer.data() + 1, length - 1);
        Out out;
        try {
            if (!server.serve(buffer[0], in, out)) {
                Out bye;
                bye.send(kOk);
                return 0;
            }
            out.send(kOk);
        } catch (const Failure& failure) {
            Out error;
            error.put_bytes(reinterpret_cast<const uint8_t*>(failure.message.data()),
                            failure.message.size());
            error.send(kError);
        }
    }
}
