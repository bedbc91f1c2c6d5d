// pmem-log: a crash-consistent circular log in a memory-mapped file (the PoWER log's shape).
//
// File layout (little-endian, offsets in bytes):
//   0     header (4096 bytes)
//     0     magic u64 "DPMEMLOG"
//     8     version u32
//     12    header crc32c over bytes 0..12 and 16..24
//     16    capacity u64 (bytes of the circular data area)
//     64    flag u64: 0 or 1, names the live metadata copy (8-byte aligned: failure-atomic store)
//     128   meta[0]: seq u64, head u64, tail u64, crc32c(0..24) u32, pad u32
//     192   meta[1]: same
//   4096  data area, `capacity` bytes, used circularly. head/tail are logical (ever-growing)
//         offsets; a byte at logical offset x lives at 4096 + x % capacity.
//   record: len u32 | crc32c(len bytes ++ payload) u32 | payload | zero pad to 8 bytes
//
// Append is tentative (copied past the durable tail, not yet durable). Commit makes a prefix of
// the tentative records durable and writes the inactive metadata copy (seq+1, head, tail):
// - on persistent memory, in three ordered steps: persist the records, persist the copy, flip the
//   flag (flushes are cheap there);
// - on an ordinary file, with one msync (a device flush) over the records, the copy and the flag
//   together. The pages of one msync reach the disk in no set order, so a crash during it can leave
//   the new copy without all of its records.
// At open the valid copy with the higher seq is live if every record it adds to the other copy
// (from the other's tail to its own) carries a valid crc; otherwise that commit was torn - never
// acknowledged, since a commit is acknowledged only after its flush returns - and the other copy is
// live (`rolledBack`). Each commit writes only the inactive copy, so the two differ by one seq.
// Older records always carry a valid crc: a mismatch there is corruption, never a torn write.
// Appends reuse only space freed by a durable head, so rolling back never meets overwritten records.
//
// Durability: pmem_persist on real persistent memory, pmem_msync on ordinary files (libpmem tells
// which with pmem_is_pmem). Built without libpmem, plain mmap + msync(MS_SYNC).

#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#ifdef DECREE_HAVE_LIBPMEM
#include <libpmem.h>
#endif

#include "crc32c.h"

namespace {

constexpr uint64_t kMagic = 0x474f4c4d454d5044ULL;  // "DPMEMLOG"
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeaderBytes = 4096;
constexpr uint64_t kFlagOff = 64;
constexpr uint64_t kMetaOff[2] = {128, 192};
constexpr uint64_t kRecHeader = 8;

inline uint64_t align8(uint64_t n) { return (n + 7) & ~uint64_t(7); }
inline uint64_t recordBytes(uint64_t len) { return kRecHeader + align8(len); }

struct Meta {
  uint64_t seq;
  uint64_t head;
  uint64_t tail;
  uint32_t crc;
  uint32_t pad;
};
static_assert(sizeof(Meta) == 32, "meta is 32 bytes");

uint32_t metaCrc(const Meta& m) { return decree::crc32c(0, reinterpret_cast<const uint8_t*>(&m), 24); }

uint32_t headerCrc(const uint8_t* base) {
  uint32_t c = decree::crc32c(0, base, 12);
  return decree::crc32c(c, base + 16, 8);
}

Napi::Error makeError(Napi::Env env, const std::string& code, const std::string& path, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("path", Napi::String::New(env, path));
  return e;
}

std::string errnoCode(int err) {
  switch (err) {
    case ENOSPC: return "ENOSPC";
    case EDQUOT: return "EDQUOT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EROFS: return "EROFS";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    default: return "E" + std::to_string(err);
  }
}

class PmemLog;

// The persistence backend of one mapping.
struct Mapping {
  uint8_t* base = nullptr;
  uint64_t size = 0;
  bool isPmem = false;
  bool viaLibpmem = false;
  int fd = -1;

  // Makes [addr, addr+len) durable. Returns 0 or an errno.
  int persist(const uint8_t* addr, uint64_t len) const {
    if (len == 0) return 0;
#ifdef DECREE_HAVE_LIBPMEM
    if (viaLibpmem) {
      if (isPmem) {
        pmem_persist(addr, len);
        return 0;
      }
      return pmem_msync(addr, len) == 0 ? 0 : errno;
    }
#endif
    static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    uintptr_t start = reinterpret_cast<uintptr_t>(addr) & ~(page - 1);
    uintptr_t end = reinterpret_cast<uintptr_t>(addr) + len;
    return msync(reinterpret_cast<void*>(start), end - start, MS_SYNC) == 0 ? 0 : errno;
  }

  void copy(uint8_t* dst, const uint8_t* src, uint64_t len) const {
#ifdef DECREE_HAVE_LIBPMEM
    if (isPmem) {
      pmem_memcpy_nodrain(dst, src, len);
      return;
    }
#endif
    memcpy(dst, src, len);
  }
};

class CommitWorker;

class PmemLog : public Napi::ObjectWrap<PmemLog> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "PmemLog",
                       {
                           InstanceMethod("append", &PmemLog::Append),
                           InstanceMethod("appendMany", &PmemLog::AppendMany),
                           InstanceMethod("commit", &PmemLog::Commit),
                           InstanceMethod("commitSync", &PmemLog::CommitSync),
                           InstanceMethod("read", &PmemLog::Read),
                           InstanceMethod("discardTentative", &PmemLog::DiscardTentative),
                           InstanceMethod("close", &PmemLog::Close),
                           InstanceAccessor("head", &PmemLog::GetHead, nullptr),
                           InstanceAccessor("tail", &PmemLog::GetTail, nullptr),
                           InstanceAccessor("tentativeTail", &PmemLog::GetTentativeTail, nullptr),
                           InstanceAccessor("capacity", &PmemLog::GetCapacity, nullptr),
                           InstanceAccessor("isPmem", &PmemLog::GetIsPmem, nullptr),
                           InstanceAccessor("seq", &PmemLog::GetSeq, nullptr),
                           InstanceAccessor("rolledBack", &PmemLog::GetRolledBack, nullptr),
                       });
  }

  // new PmemLog(path, capacity): opens the log at path, creating it with `capacity` data bytes if missing.
  explicit PmemLog(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PmemLog>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber())
      throw Napi::TypeError::New(env, "new PmemLog(path: string, capacity: number)");
    path_ = info[0].As<Napi::String>().Utf8Value();
    double capArg = info[1].As<Napi::Number>().DoubleValue();
    struct stat st;
    bool exists = stat(path_.c_str(), &st) == 0;
    if (!exists) {
      if (!(capArg >= 4096) || capArg > double(1ULL << 40)) throw makeError(env, "EINVAL", path_, "pmem log capacity must be between 4 KiB and 1 TiB");
      uint64_t cap = (static_cast<uint64_t>(capArg) + 4095) & ~uint64_t(4095);
      Create(env, cap);
    } else {
      OpenExisting(env);
    }
  }

  ~PmemLog() override { Unmap(); }

  uint8_t* Data() const { return map_.base + kHeaderBytes; }
  const Mapping& Map() const { return map_; }
  const std::string& Path() const { return path_; }

  // Copies n bytes to logical offset `at` of the circular area.
  void WriteAt(uint64_t at, const uint8_t* src, uint64_t n) {
    uint64_t p = at % capacity_;
    uint64_t first = n < capacity_ - p ? n : capacity_ - p;
    map_.copy(Data() + p, src, first);
    if (first < n) map_.copy(Data(), src + first, n - first);
  }
  void ReadAt(uint64_t at, uint8_t* dst, uint64_t n) const {
    uint64_t p = at % capacity_;
    uint64_t first = n < capacity_ - p ? n : capacity_ - p;
    memcpy(dst, Data() + p, first);
    if (first < n) memcpy(dst + first, Data(), n - first);
  }
  // Persists logical range [from, to).
  int PersistRange(uint64_t from, uint64_t to) const {
    if (to <= from) return 0;
    uint64_t n = to - from;
    uint64_t p = from % capacity_;
    uint64_t first = n < capacity_ - p ? n : capacity_ - p;
    int e = map_.persist(Data() + p, first);
    if (e == 0 && first < n) e = map_.persist(Data(), n - first);
    return e;
  }

  // The metadata commit (runs on a worker thread for commit(), on the main thread for commitSync()).
  // Returns 0 or an errno; on success the new (seq, head, tail) is live.
  int DoCommit(uint64_t fromTail, uint64_t upTo, uint64_t head, uint64_t seq, uint64_t flag) {
    uint64_t next = flag ^ 1;
    Meta m{};
    m.seq = seq + 1;
    m.head = head;
    m.tail = upTo;
    m.crc = metaCrc(m);
    uint8_t* mp = map_.base + kMetaOff[next];
    int e = 0;
    if (map_.isPmem) {
      // persistent memory: flushes are cheap, keep the three ordered steps
      e = PersistRange(fromTail, upTo);
#ifdef DECREE_HAVE_LIBPMEM
      pmem_drain();
#endif
      if (e) return e;
      memcpy(mp, &m, sizeof m);
      if ((e = map_.persist(mp, sizeof m))) return e;
      // flip: an aligned 8-byte store
      __atomic_store_n(reinterpret_cast<uint64_t*>(map_.base + kFlagOff), next, __ATOMIC_RELEASE);
      return map_.persist(map_.base + kFlagOff, 8);
    }
    // a file: every msync is a device flush, so one per commit. The copy and the flag ride in the
    // header page with the records: one msync from the header to the end of the records' pages
    // (msync writes only dirty pages). Open checks the records the new copy adds (see the top).
    memcpy(mp, &m, sizeof m);
    __atomic_store_n(reinterpret_cast<uint64_t*>(map_.base + kFlagOff), next, __ATOMIC_RELEASE);
    uint64_t hi = kHeaderBytes;
    if (upTo > fromTail) {
      uint64_t p = fromTail % capacity_, n = upTo - fromTail;
      hi = kHeaderBytes + (p + n > capacity_ ? capacity_ : p + n);
    }
    return map_.persist(map_.base, hi);
  }

  // The record at logical `at`, which must end by `to`: its length in `len` and its payload copied to
  // `alloc(len)`. Returns nullptr when it is whole, else why not.
  template <typename Alloc>
  const char* ReadRecord(uint64_t at, uint64_t to, uint32_t& len, Alloc alloc) const {
    uint8_t hdr[8];
    ReadAt(at, hdr, 8);
    uint32_t crc;
    memcpy(&len, hdr, 4);
    memcpy(&crc, hdr + 4, 4);
    if (at + recordBytes(len) > to) return "record length runs past the committed tail";
    uint8_t* payload = alloc(len);
    ReadAt(at + 8, payload, len);
    uint32_t c = decree::crc32c(0, hdr, 4);
    return decree::crc32c(c, payload, len) == crc ? nullptr : "record checksum mismatch";
  }

  // Whether the records in logical [from, to) are whole: each length fits and each crc matches.
  bool RecordsWhole(uint64_t from, uint64_t to) const {
    std::vector<uint8_t> buf;
    uint32_t len;
    for (uint64_t at = from; at < to; at += recordBytes(len)) {
      if (ReadRecord(at, to, len, [&](uint32_t n) {
            buf.resize(n);
            return buf.data();
          }))
        return false;
    }
    return true;
  }

  void Committed(uint64_t upTo, uint64_t head) {
    tail_ = upTo;
    head_ = head;
    seq_++;
    flag_ ^= 1;
    committing_ = false;
  }

  bool committing_ = false;
  uint64_t head_ = 0, tail_ = 0, tentTail_ = 0, seq_ = 0, flag_ = 0, capacity_ = 0;

 private:
  void Create(Napi::Env env, uint64_t cap) {
    uint64_t size = kHeaderBytes + cap;
    // Write the whole file with zeros first (not posix_fallocate): on ext4/xfs fallocated blocks
    // are "unwritten" extents, and converting them on every commit's msync costs journal writes.
    int fd = open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
      int err = errno;
      throw makeError(env, errnoCode(err), path_, "cannot create pmem log " + path_ + ": " + strerror(err));
    }
    {
      std::vector<uint8_t> zeros(1 << 20, 0);
      int err = 0;
      for (uint64_t off = 0; off < size && !err;) {
        size_t n = static_cast<size_t>(size - off < zeros.size() ? size - off : zeros.size());
        ssize_t w = pwrite(fd, zeros.data(), n, static_cast<off_t>(off));
        if (w < 0) err = errno;
        else off += static_cast<uint64_t>(w);
      }
      if (!err && fdatasync(fd) != 0) err = errno;
      if (err) {
        close(fd);
        unlink(path_.c_str());
        throw makeError(env, errnoCode(err), path_, "cannot allocate pmem log " + path_ + ": " + strerror(err));
      }
    }
#ifdef DECREE_HAVE_LIBPMEM
    close(fd);
    size_t mapped = 0;
    int isPmem = 0;
    void* addr = pmem_map_file(path_.c_str(), 0, 0, 0, &mapped, &isPmem);
    if (!addr) {
      int err = errno;
      unlink(path_.c_str());
      throw makeError(env, errnoCode(err), path_, std::string("cannot map pmem log ") + path_ + ": " + pmem_errormsg());
    }
    map_.base = static_cast<uint8_t*>(addr);
    map_.size = mapped;
    map_.isPmem = isPmem != 0;
    map_.viaLibpmem = true;
#else
    MapFd(env, fd, size);
#endif
    uint8_t* b = map_.base;
    memset(b, 0, kHeaderBytes);
    uint64_t magic = kMagic;
    memcpy(b, &magic, 8);
    memcpy(b + 8, &kVersion, 4);
    memcpy(b + 16, &cap, 8);
    uint32_t hc = headerCrc(b);
    memcpy(b + 12, &hc, 4);
    Meta m{};
    m.crc = metaCrc(m);
    memcpy(b + kMetaOff[0], &m, sizeof m);
    memcpy(b + kMetaOff[1], &m, sizeof m);
    int e = map_.persist(b, kHeaderBytes);
    if (e) {
      Unmap();
      unlink(path_.c_str());
      throw makeError(env, errnoCode(e), path_, "cannot persist pmem log header " + path_ + ": " + strerror(e));
    }
    // the new file's directory entry
    std::string dir = path_.substr(0, path_.find_last_of('/') == std::string::npos ? 0 : path_.find_last_of('/'));
    int dfd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    capacity_ = cap;
  }

  void MapFd(Napi::Env env, int fd, uint64_t size) {
    void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED) {
      int err = errno;
      close(fd);
      throw makeError(env, errnoCode(err), path_, "cannot map pmem log " + path_ + ": " + strerror(err));
    }
    map_.base = static_cast<uint8_t*>(addr);
    map_.size = size;
    map_.fd = fd;
  }

  [[noreturn]] void Corrupt(Napi::Env env, uint64_t fileOffset, const std::string& why) {
    Napi::Error e = makeError(env, "ECORRUPT", path_, "pmem log " + path_ + " is corrupt at offset " + std::to_string(fileOffset) + ": " + why);
    e.Set("offset", Napi::Number::New(env, double(fileOffset)));
    Unmap();
    throw e;
  }

  void OpenExisting(Napi::Env env) {
#ifdef DECREE_HAVE_LIBPMEM
    size_t mapped = 0;
    int isPmem = 0;
    void* addr = pmem_map_file(path_.c_str(), 0, 0, 0, &mapped, &isPmem);
    if (!addr) {
      int err = errno;
      throw makeError(env, errnoCode(err), path_, std::string("cannot open pmem log ") + path_ + ": " + pmem_errormsg());
    }
    map_.base = static_cast<uint8_t*>(addr);
    map_.size = mapped;
    map_.isPmem = isPmem != 0;
    map_.viaLibpmem = true;
#else
    int fd = open(path_.c_str(), O_RDWR);
    if (fd < 0) {
      int err = errno;
      throw makeError(env, errnoCode(err), path_, "cannot open pmem log " + path_ + ": " + strerror(err));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      throw makeError(env, errnoCode(err), path_, "cannot stat pmem log " + path_ + ": " + strerror(err));
    }
    if (static_cast<uint64_t>(st.st_size) < kHeaderBytes) {
      close(fd);
      throw makeError(env, "ECORRUPT", path_, "pmem log " + path_ + " is corrupt at offset 0: shorter than its header");
    }
    MapFd(env, fd, static_cast<uint64_t>(st.st_size));
#endif
    const uint8_t* b = map_.base;
    if (map_.size < kHeaderBytes) Corrupt(env, 0, "shorter than its header");
    uint64_t magic, cap;
    uint32_t version, hc;
    memcpy(&magic, b, 8);
    memcpy(&version, b + 8, 4);
    memcpy(&hc, b + 12, 4);
    memcpy(&cap, b + 16, 8);
    if (magic != kMagic) Corrupt(env, 0, "not a pmem log (bad magic)");
    if (hc != headerCrc(b)) Corrupt(env, 12, "header checksum mismatch");
    if (version != kVersion) Corrupt(env, 8, "unsupported version " + std::to_string(version));
    if (cap == 0 || kHeaderBytes + cap > map_.size) Corrupt(env, 16, "capacity larger than the file");
    capacity_ = cap;
    // the live copy: the valid one with the higher seq, unless the records it adds are torn
    Meta m[2];
    bool valid[2];
    for (int i = 0; i < 2; i++) {
      memcpy(&m[i], b + kMetaOff[i], sizeof m[i]);
      valid[i] = m[i].crc == metaCrc(m[i]) && m[i].head <= m[i].tail && m[i].tail - m[i].head <= cap &&
                 !(m[i].head & 7) && !(m[i].tail & 7);
    }
    if (!valid[0] && !valid[1]) Corrupt(env, kMetaOff[0], "both metadata copies are damaged");
    int live = !valid[0] ? 1 : !valid[1] ? 0 : (m[1].seq > m[0].seq ? 1 : 0);
    int other = live ^ 1;
    if (valid[other]) {
      uint64_t gap = m[live].seq - m[other].seq;
      if (gap > 1) Corrupt(env, kMetaOff[other], "metadata copies " + std::to_string(gap) + " commits apart");
      uint64_t from = m[other].tail > m[live].head ? m[other].tail : m[live].head;
      if (gap == 1 && (m[live].tail < m[other].tail || m[live].head < m[other].head || !RecordsWhole(from, m[live].tail))) {
        live = other;  // the newer commit was torn: it was never acknowledged
        rolledBack_ = true;
      }
    } else {
      rolledBack_ = true;  // the damaged copy was being written (the newer one) when the process stopped
    }
    flag_ = uint64_t(live);
    seq_ = m[live].seq;
    head_ = m[live].head;
    tail_ = m[live].tail;
    tentTail_ = m[live].tail;
  }

  bool rolledBack_ = false;

  void Unmap() {
    if (!map_.base) return;
#ifdef DECREE_HAVE_LIBPMEM
    if (map_.viaLibpmem) pmem_unmap(map_.base, map_.size);
    else munmap(map_.base, map_.size);
#else
    munmap(map_.base, map_.size);
#endif
    if (map_.fd >= 0) close(map_.fd);
    map_.base = nullptr;
    map_.fd = -1;
  }

  void CheckOpen(Napi::Env env) {
    if (!map_.base) throw makeError(env, "ECLOSED", path_, "pmem log " + path_ + " is closed");
  }

  void CheckSpace(Napi::Env env, uint64_t bytes) {
    if (tentTail_ + bytes - head_ > capacity_)
      throw makeError(env, "ELOGFULL", path_,
                      "pmem log " + path_ + " is full (" + std::to_string(capacity_) + " bytes; advance its head after a snapshot, or make it bigger)");
  }

  uint64_t WriteRecord(const uint8_t* p, uint32_t len) {
    uint64_t at = tentTail_;
    uint8_t hdr[8];
    memcpy(hdr, &len, 4);
    uint32_t c = decree::crc32c(0, hdr, 4);
    c = decree::crc32c(c, p, len);
    memcpy(hdr + 4, &c, 4);
    WriteAt(at, hdr, 8);
    WriteAt(at + 8, p, len);
    uint64_t pad = align8(len) - len;
    if (pad) {
      static const uint8_t zeros[8] = {0};
      WriteAt(at + 8 + len, zeros, pad);
    }
    tentTail_ = at + recordBytes(len);
    return at;
  }

  // append(buf): tentative; returns the record's logical offset.
  Napi::Value Append(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "append(buf: Uint8Array)");
    auto buf = info[0].As<Napi::Uint8Array>();
    if (buf.ByteLength() > 0xffffffffULL) throw Napi::RangeError::New(env, "record too large");
    CheckSpace(env, recordBytes(buf.ByteLength()));
    return Napi::Number::New(env, double(WriteRecord(buf.Data(), uint32_t(buf.ByteLength()))));
  }

  // appendMany(bufs): tentative, all or nothing; returns the tentative tail after them.
  Napi::Value AppendMany(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    if (!info[0].IsArray()) throw Napi::TypeError::New(env, "appendMany(bufs: Uint8Array[])");
    auto arr = info[0].As<Napi::Array>();
    uint32_t n = arr.Length();
    std::vector<Napi::Uint8Array> bufs;
    bufs.reserve(n);
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsTypedArray()) throw Napi::TypeError::New(env, "appendMany(bufs: Uint8Array[])");
      bufs.push_back(v.As<Napi::Uint8Array>());
      total += recordBytes(bufs.back().ByteLength());
    }
    CheckSpace(env, total);
    for (auto& b : bufs) WriteRecord(b.Data(), uint32_t(b.ByteLength()));
    return Napi::Number::New(env, double(tentTail_));
  }

  bool CommitArgs(const Napi::CallbackInfo& info, uint64_t& upTo, uint64_t& head) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    if (committing_) throw makeError(env, "EBUSY", path_, "a commit is already in flight");
    upTo = info.Length() > 0 && info[0].IsNumber() ? uint64_t(info[0].As<Napi::Number>().DoubleValue()) : tentTail_;
    head = info.Length() > 1 && info[1].IsNumber() ? uint64_t(info[1].As<Napi::Number>().DoubleValue()) : head_;
    if (upTo < tail_ || upTo > tentTail_ || (upTo & 7)) throw Napi::RangeError::New(env, "commit: upTo must lie between the tail and the tentative tail");
    if (head < head_ || head > upTo || (head & 7)) throw Napi::RangeError::New(env, "commit: head must lie between the current head and upTo");
    return true;
  }

  // commitSync(upTo = tentativeTail, head = head)
  Napi::Value CommitSync(const Napi::CallbackInfo& info) {
    uint64_t upTo, head;
    CommitArgs(info, upTo, head);
    int e = DoCommit(tail_, upTo, head, seq_, flag_);
    if (e) throw makeError(info.Env(), errnoCode(e), path_, "pmem log commit failed on " + path_ + ": " + strerror(e));
    committing_ = true;
    Committed(upTo, head);
    return info.Env().Undefined();
  }

  // commit(upTo, head, cb): the same off the event loop; cb(err) when durable.
  Napi::Value Commit(const Napi::CallbackInfo& info);

  // read(): { payloads: Buffer[], offsets: number[] } for every durable record, head to tail.
  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    Napi::Array payloads = Napi::Array::New(env);
    Napi::Array offsets = Napi::Array::New(env);
    uint32_t i = 0;
    uint32_t len;
    for (uint64_t at = head_; at < tail_; at += recordBytes(len)) {
      Napi::Buffer<uint8_t> out;
      const char* why = ReadRecord(at, tail_, len, [&](uint32_t n) {
        out = Napi::Buffer<uint8_t>::New(env, n);
        return out.Data();
      });
      if (why) {
        uint64_t fileOff = kHeaderBytes + at % capacity_;
        Napi::Error e = makeError(env, "ECORRUPT", path_, "pmem log " + path_ + " is corrupt at offset " + std::to_string(fileOff) + ": " + why);
        e.Set("offset", Napi::Number::New(env, double(fileOff)));
        throw e;
      }
      payloads.Set(i, out);
      offsets.Set(i, Napi::Number::New(env, double(at)));
      i++;
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("payloads", payloads);
    r.Set("offsets", offsets);
    return r;
  }

  Napi::Value DiscardTentative(const Napi::CallbackInfo& info) {
    tentTail_ = tail_;
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (committing_) throw makeError(info.Env(), "EBUSY", path_, "close: a commit is in flight");
    Unmap();
    return info.Env().Undefined();
  }

  Napi::Value GetHead(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(head_)); }
  Napi::Value GetTail(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(tail_)); }
  Napi::Value GetTentativeTail(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(tentTail_)); }
  Napi::Value GetCapacity(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(capacity_)); }
  Napi::Value GetIsPmem(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), map_.isPmem); }
  Napi::Value GetSeq(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(seq_)); }
  Napi::Value GetRolledBack(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), rolledBack_); }

  std::string path_;
  Mapping map_;
};

class CommitWorker : public Napi::AsyncWorker {
 public:
  CommitWorker(Napi::Function cb, PmemLog* log, Napi::Object self, uint64_t upTo, uint64_t head)
      : Napi::AsyncWorker(cb), log_(log), upTo_(upTo), head_(head), from_(log->tail_), seq_(log->seq_), flag_(log->flag_) {
    self_ = Napi::Persistent(self);
  }
  void Execute() override {
    err_ = log_->DoCommit(from_, upTo_, head_, seq_, flag_);
    if (err_) SetError(std::string("pmem log commit failed on ") + log_->Path() + ": " + strerror(err_));
  }
  void OnOK() override {
    log_->Committed(upTo_, head_);
    Callback().Call({Env().Null()});
  }
  void OnError(const Napi::Error& e) override {
    log_->committing_ = false;
    Napi::Error err = makeError(Env(), errnoCode(err_), log_->Path(), e.Message());
    Callback().Call({err.Value()});
  }

 private:
  PmemLog* log_;
  Napi::ObjectReference self_;  // keeps the log alive while the worker runs
  uint64_t upTo_, head_, from_, seq_, flag_;
  int err_ = 0;
};

Napi::Value PmemLog::Commit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t upTo, head;
  CommitArgs(info, upTo, head);
  if (info.Length() < 3 || !info[2].IsFunction()) throw Napi::TypeError::New(env, "commit(upTo, head, cb)");
  committing_ = true;
  auto* w = new CommitWorker(info[2].As<Napi::Function>(), this, info.This().As<Napi::Object>(), upTo, head);
  w->Queue();
  return env.Undefined();
}

Napi::Value Crc32c(const Napi::CallbackInfo& info) {
  auto b = info[0].As<Napi::Uint8Array>();
  return Napi::Number::New(info.Env(), decree::crc32c(0, b.Data(), b.ByteLength()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("PmemLog", PmemLog::Init(env));
  exports.Set("crc32c", Napi::Function::New(env, Crc32c));
#ifdef DECREE_HAVE_LIBPMEM
  exports.Set("backend", Napi::String::New(env, "libpmem"));
#else
  exports.Set("backend", Napi::String::New(env, "mmap"));
#endif
  exports.Set("headerBytes", Napi::Number::New(env, double(kHeaderBytes)));
  return exports;
}

}  // namespace

NODE_API_MODULE(pmem_log, Init)
