#include "ring.h"

#include <cstring>
#include <ctime>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "crc32c.h"

namespace decree {

uint32_t frameCrc(uint32_t len, uint64_t seq, const uint8_t* payload, size_t n) {
  uint8_t hdr[12];
  memcpy(hdr, &len, 4);
  memcpy(hdr + 4, &seq, 8);
  uint32_t c = crc32c(0, hdr, 12);
  return n ? crc32c(c, payload, n) : c;
}

static uint32_t headerCrc(const uint8_t* base) {
  uint32_t c = crc32c(0, base, 12);
  return crc32c(c, base + 16, 8);
}

void Ring::format(uint8_t* base, uint64_t capacity) {
  memset(base, 0, kRingHeaderBytes);
  memcpy(base, &kRingMagic, 8);
  memcpy(base + 8, &kRingVersion, 4);
  memcpy(base + 16, &capacity, 8);
  uint32_t c = headerCrc(base);
  memcpy(base + 12, &c, 4);
  std::atomic_thread_fence(std::memory_order_release);
}

uint64_t Ring::capacityOf(const uint8_t* base) {
  uint64_t c;
  memcpy(&c, base + 16, 8);
  return c;
}

std::string Ring::check(const uint8_t* base, uint64_t mappedBytes) {
  if (mappedBytes < kRingHeaderBytes) return "file is smaller than the ring header";
  uint64_t magic;
  uint32_t version, crc;
  memcpy(&magic, base, 8);
  memcpy(&version, base + 8, 4);
  memcpy(&crc, base + 12, 4);
  if (magic != kRingMagic) return "bad magic (not a decree ring)";
  if (version != kRingVersion) return "unsupported ring version " + std::to_string(version);
  if (crc != headerCrc(base)) return "header checksum mismatch";
  uint64_t cap = capacityOf(base);
  if (cap < 4096 || (cap & (cap - 1)) != 0) return "bad capacity " + std::to_string(cap);
  if (kRingHeaderBytes + cap != mappedBytes) return "file size does not match the capacity in its header";
  return "";
}

void Ring::put(uint64_t logical, const void* src, size_t n) { memcpy(data(logical), src, n); }

void Ring::attachWriter(uint32_t pid) {
  wTail_ = tailAtomic().load(std::memory_order_acquire);
  wSeq_ = seqAtomic().load(std::memory_order_acquire);
  if (wSeq_ == 0) wSeq_ = 1;
  setU32(80, pid);
}

void Ring::detachWriter() { setU32(80, 0); }

void Ring::attachReader(uint32_t pid) {
  setU32(144, pid);
  setU32(148, 0);
}

void Ring::detachReader() {
  setU32(144, 0);
  setU32(148, 1);
}

// Writes one frame (and a padding frame before it when it does not fit before the end) at wTail_.
bool Ring::writeOne(const uint8_t* p, size_t len, uint64_t head) {
  uint64_t fb = frameBytes(len);
  uint64_t pos = wTail_ & (cap_ - 1);
  uint64_t rest = cap_ - pos;
  uint64_t pad = fb > rest ? rest : 0;
  if (wTail_ + pad + fb - head > cap_) return false;
  if (pad) {
    uint8_t h[16];
    uint32_t l = kPadLen, c = frameCrc(kPadLen, wSeq_, nullptr, 0);
    memcpy(h, &l, 4);
    memcpy(h + 4, &c, 4);
    memcpy(h + 8, &wSeq_, 8);
    put(wTail_, h, 16);
    wTail_ += pad;
    stats.pads++;
  }
  uint8_t* dst = data(wTail_);
  if (len) memcpy(dst + kFrameHeader, p, len);
  uint64_t padBytes = fb - kFrameHeader - len;
  if (padBytes) memset(dst + kFrameHeader + len, 0, padBytes);
  uint32_t l = static_cast<uint32_t>(len), c = frameCrc(l, wSeq_, p, len);
  memcpy(dst, &l, 4);
  memcpy(dst + 4, &c, 4);
  memcpy(dst + 8, &wSeq_, 8);
  wTail_ += fb;
  wSeq_++;
  return true;
}

size_t Ring::writeMany(const uint8_t* const* d, const size_t* lens, size_t n) {
  uint64_t head = headAtomic().load(std::memory_order_acquire);
  size_t i = 0;
  for (; i < n; i++) {
    if (!writeOne(d[i], lens[i], head)) {
      // the reader may have moved on since: look once more before giving up
      head = headAtomic().load(std::memory_order_acquire);
      if (!writeOne(d[i], lens[i], head)) break;
    }
    stats.frames++;
    stats.bytes += lens[i];
  }
  if (i < n) stats.full++;
  if (i > 0) {
    seqAtomic().store(wSeq_, std::memory_order_relaxed);
    tailAtomic().store(wTail_, std::memory_order_release);  // publishes the frames' bytes
    if (wakeups) wakeReader();
  }
  return i;
}

void Ring::writeTorn(const uint8_t* p, size_t len, size_t written, bool corruptCrc, bool publish) {
  uint64_t head = headAtomic().load(std::memory_order_acquire);
  uint64_t fb = frameBytes(len);
  uint64_t savedTail = wTail_, savedSeq = wSeq_;
  // build the whole frame in a scratch buffer, then copy only a prefix of it
  std::vector<uint8_t> f(fb, 0);
  uint32_t l = static_cast<uint32_t>(len), c = frameCrc(l, wSeq_, p, len);
  if (corruptCrc) c ^= 0x5a5a5a5a;
  memcpy(f.data(), &l, 4);
  memcpy(f.data() + 4, &c, 4);
  memcpy(f.data() + 8, &wSeq_, 8);
  if (len) memcpy(f.data() + kFrameHeader, p, len);
  uint64_t pos = wTail_ & (cap_ - 1);
  if (fb > cap_ - pos || wTail_ + fb - head > cap_) return;  // keep the hook simple: no padding, no wrap
  if (written > fb) written = fb;
  memcpy(data(wTail_), f.data(), written);
  if (publish) {
    wTail_ += fb;
    wSeq_++;
    seqAtomic().store(wSeq_, std::memory_order_relaxed);
    tailAtomic().store(wTail_, std::memory_order_release);
  } else {
    wTail_ = savedTail;
    wSeq_ = savedSeq;
  }
}

}  // namespace decree

namespace decree {

// Dekker-style handshake with no lost wake-up: the reader stores asleep = 1, then (seq_cst) loads the
// tail; the writer stores the tail, then (seq_cst) loads asleep. At least one of them sees the other's
// store: either the reader sees the new tail and does not sleep, or the writer sees asleep and wakes it.
// The futex is not FUTEX_PRIVATE: the word lives in a mapping shared between processes.
void Ring::waitForData(uint32_t timeoutUs) {
  std::atomic<uint32_t>& w = sleepWord();
  w.store(1, std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!hasData()) {
    struct timespec ts;
    ts.tv_sec = timeoutUs / 1000000;
    ts.tv_nsec = static_cast<long>(timeoutUs % 1000000) * 1000;
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&w), FUTEX_WAIT, 1, &ts, nullptr, 0);
  }
  w.store(0, std::memory_order_relaxed);
}

void Ring::wakeReader() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::atomic<uint32_t>& w = sleepWord();
  if (w.load(std::memory_order_seq_cst) != 0) {
    w.store(0, std::memory_order_relaxed);
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&w), FUTEX_WAKE, 1, nullptr, nullptr, 0);
  }
}

}  // namespace decree
