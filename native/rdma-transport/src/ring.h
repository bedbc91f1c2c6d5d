// The one-sided ring shared by both backends (see docs/decisions/0005-rdma-ring.md).
//
// Layout (little-endian; offsets in bytes from the start of the mapping / registered region):
//   0     magic u64 "DRDMARNG" | version u32 | header crc32c u32 (over 0..12 and 16..24)
//   16    capacity u64 (data-area bytes, a power of two >= 4096)
//   64    WRITER cache line: tail u64 (logical bytes committed) | seq u64 (next frame seq) | writerPid u32
//   128   READER cache line: head u64 (logical bytes consumed) | lastSeq u64 | readerPid u32 @144 | closed u32 @148 | asleep u32 @152
//   4096  data area, used circularly: logical offset x lives at 4096 + x % capacity
// Frame (16-byte aligned, never split): len u32 | crc32c u32 | seq u64 | payload | zero pad to 16.
//   crc = crc32c(len bytes ++ seq bytes ++ payload). len == 0xFFFFFFFF is a padding frame: the rest
//   of the data area up to its end is skipped (its crc covers len ++ seq).
// The writer copies the frame, then release-stores seq and tail; the reader acquire-loads tail,
// validates every frame below it (crc, seq strictly increasing, length inside [head, tail)) and
// release-stores head. The writer acquire-loads head and never writes past head + capacity.
#pragma once
#include <atomic>
#include <cstring>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace decree {

constexpr uint64_t kRingMagic = 0x474e524d44524444ULL;  // "DDRDMRNG" little-endian bytes
constexpr uint32_t kRingVersion = 1;
constexpr uint64_t kRingHeaderBytes = 4096;
constexpr uint64_t kFrameHeader = 16;
constexpr uint32_t kPadLen = 0xFFFFFFFFu;

inline uint64_t align16(uint64_t n) { return (n + 15) & ~uint64_t(15); }
inline uint64_t frameBytes(uint64_t len) { return align16(kFrameHeader + len); }

struct RingStats {
  uint64_t frames = 0;
  uint64_t bytes = 0;
  uint64_t torn = 0;      // frames rejected (crc mismatch, bad length, stale seq)
  uint64_t seqGaps = 0;   // frames missing between two delivered ones
  uint64_t full = 0;      // sends refused for lack of room
  uint64_t pads = 0;
};

/** A ring over memory someone else owns (an mmap'd file, or an RDMA-registered buffer). */
class Ring {
 public:
  Ring(uint8_t* base, uint64_t capacity) : base_(base), cap_(capacity) {}
  /** writes a fresh header (capacity, zero counters) */
  static void format(uint8_t* base, uint64_t capacity);
  /** "" when the header is valid for a mapping of `mappedBytes`, else why not */
  static std::string check(const uint8_t* base, uint64_t mappedBytes);
  static uint64_t capacityOf(const uint8_t* base);

  uint64_t capacity() const { return cap_; }
  uint64_t maxPayload() const { return cap_ / 4 - kFrameHeader; }

  // ---- writer
  /** loads tail and seq from the header (a restarted writer continues after the committed tail) */
  void attachWriter(uint32_t pid);
  /** copies frames (all or a prefix) and publishes the tail once; returns how many were written */
  size_t writeMany(const uint8_t* const* data, const size_t* lens, size_t n);
  /** test hook: writes `len` bytes of `frame` as if the writer died part-way; `publish` also advances
   *  the tail over the whole frame (the RDMA case where the tail lands before the data) */
  void writeTorn(const uint8_t* data, size_t len, size_t writtenBytes, bool corruptCrc, bool publish);
  void detachWriter();
  uint64_t tail() const { return tailAtomic().load(std::memory_order_acquire); }

  // ---- reader
  void attachReader(uint32_t pid);
  void detachReader();
  /** validates and consumes frames in [head, tail) (at most maxFrames/maxBytes), calling deliver for
   *  each good payload; publishes the new head; returns the number delivered */
  template <typename F>
  size_t consume(size_t maxFrames, uint64_t maxBytes, F&& deliver, bool waitOnBad = false);
  /** set by consume(waitOnBad = true) when it stopped before a frame that is not valid yet */
  bool stuck = false;
  bool hasData() const { return tailAtomic().load(std::memory_order_acquire) != headAtomic().load(std::memory_order_relaxed); }
  uint64_t head() const { return headAtomic().load(std::memory_order_acquire); }
  uint32_t readerPid() const { return u32(144); }
  bool readerClosed() const { return u32(148) != 0; }
  /** the reader's "asleep" word (@152): set by a reader about to futex-wait on it, cleared on waking */
  std::atomic<uint32_t>& sleepWord() const { return *reinterpret_cast<std::atomic<uint32_t>*>(base_ + 152); }
  /** reader: waits until the tail moves, `stop` is set, or timeoutUs passes (a futex on sleepWord) */
  void waitForData(uint32_t timeoutUs);
  /** wakes a reader blocked in waitForData (the writer calls it after publishing; close calls it) */
  void wakeReader();
  /** whether writers wake the reader through the futex (true for shm; an RDMA ring is polled) */
  bool wakeups = true;
  uint32_t writerPid() const { return u32(80); }

  RingStats stats;

 private:
  std::atomic<uint64_t>& tailAtomic() const { return *reinterpret_cast<std::atomic<uint64_t>*>(base_ + 64); }
  std::atomic<uint64_t>& seqAtomic() const { return *reinterpret_cast<std::atomic<uint64_t>*>(base_ + 72); }
  std::atomic<uint64_t>& headAtomic() const { return *reinterpret_cast<std::atomic<uint64_t>*>(base_ + 128); }
  std::atomic<uint64_t>& lastSeqAtomic() const { return *reinterpret_cast<std::atomic<uint64_t>*>(base_ + 136); }
  uint32_t u32(uint64_t off) const { return reinterpret_cast<std::atomic<uint32_t>*>(base_ + off)->load(std::memory_order_acquire); }
  void setU32(uint64_t off, uint32_t v) { reinterpret_cast<std::atomic<uint32_t>*>(base_ + off)->store(v, std::memory_order_release); }
  uint8_t* data(uint64_t logical) const { return base_ + kRingHeaderBytes + (logical & (cap_ - 1)); }
  /** copies into the data area at a logical offset (the frame never crosses the end) */
  void put(uint64_t logical, const void* src, size_t n);
  bool writeOne(const uint8_t* p, size_t len, uint64_t head);

  uint8_t* base_;
  uint64_t cap_;
  // writer's private copies (published through the header)
  uint64_t wTail_ = 0, wSeq_ = 1;
};

uint32_t frameCrc(uint32_t len, uint64_t seq, const uint8_t* payload, size_t n);

template <typename F>
size_t Ring::consume(size_t maxFrames, uint64_t maxBytes, F&& deliver, bool waitOnBad) {
  stuck = false;
  uint64_t tail = tailAtomic().load(std::memory_order_acquire);
  uint64_t head = headAtomic().load(std::memory_order_relaxed);
  uint64_t last = lastSeqAtomic().load(std::memory_order_relaxed);
  size_t n = 0;
  uint64_t bytes = 0;
  if (tail - head > cap_) {  // a tail no writer could have published: corrupt header
    stats.torn++;
    head = tail;
  }
  while (head != tail && n < maxFrames && bytes < maxBytes) {
    uint64_t pos = head & (cap_ - 1);
    const uint8_t* h = data(head);
    uint32_t len, crc;
    uint64_t seq;
    memcpy(&len, h, 4);
    memcpy(&crc, h + 4, 4);
    memcpy(&seq, h + 8, 8);
    if (len == kPadLen) {
      uint64_t rest = cap_ - pos;
      if (crc == frameCrc(len, seq, nullptr, 0) && head + rest <= tail) {
        head += rest;
        stats.pads++;
        continue;
      }
      if (waitOnBad) {
        stuck = true;
        break;
      }
      stats.torn++;
      head = tail;  // nothing below tail can be trusted to be aligned to a frame
      break;
    }
    uint64_t fb = frameBytes(len);
    bool badLen = len > maxPayload() || head + fb > tail || pos + fb > cap_;
    if (waitOnBad && (badLen || crc != frameCrc(len, seq, h + kFrameHeader, len))) {
      stuck = true;  // RDMA: the tail may land before the frame's bytes; look again later
      break;
    }
    if (badLen) {
      stats.torn++;
      head = tail;
      break;
    }
    if (crc != frameCrc(len, seq, h + kFrameHeader, len) || seq <= last) {
      stats.torn++;  // the length is plausible: skip this frame only
      head += fb;
      continue;
    }
    if (last != 0 && seq > last + 1) stats.seqGaps += seq - last - 1;
    last = seq;
    deliver(h + kFrameHeader, static_cast<size_t>(len));
    head += fb;
    n++;
    bytes += len;
    stats.frames++;
    stats.bytes += len;
  }
  lastSeqAtomic().store(last, std::memory_order_relaxed);
  headAtomic().store(head, std::memory_order_release);
  return n;
}

}  // namespace decree
