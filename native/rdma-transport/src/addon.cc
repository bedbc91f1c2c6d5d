// node-addon-api bindings: ShmRing (the ring in a /dev/shm file), RdmaEndpoint (the same ring over
// RDMA WRITE), listRdmaDevices(), crc32c(). The ring protocol is in ring.h.
#include <napi.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "crc32c.h"
#include "ring.h"
#include "verbs.h"

namespace {

using decree::Ring;

Napi::Error makeError(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

std::string errnoName(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ENOSPC: return "ENOSPC";
    case ENOMEM: return "ENOMEM";
    case EEXIST: return "EEXIST";
    default: return "EIO";
  }
}

Napi::Object statsObject(Napi::Env env, const decree::RingStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("frames", Napi::Number::New(env, static_cast<double>(s.frames)));
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(s.bytes)));
  o.Set("torn", Napi::Number::New(env, static_cast<double>(s.torn)));
  o.Set("seqGaps", Napi::Number::New(env, static_cast<double>(s.seqGaps)));
  o.Set("full", Napi::Number::New(env, static_cast<double>(s.full)));
  o.Set("pads", Napi::Number::New(env, static_cast<double>(s.pads)));
  return o;
}

/** Collects the payload pointers of a JS array of Uint8Array (valid while the array lives). */
void collect(const Napi::Value& v, std::vector<const uint8_t*>& ptrs, std::vector<size_t>& lens, uint64_t maxPayload) {
  Napi::Env env = v.Env();
  if (!v.IsArray()) throw Napi::TypeError::New(env, "expected an array of Uint8Array");
  Napi::Array a = v.As<Napi::Array>();
  uint32_t n = a.Length();
  ptrs.resize(n);
  lens.resize(n);
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value x = a.Get(i);
    if (!x.IsTypedArray() || x.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, "frame " + std::to_string(i) + " is not a Uint8Array");
    Napi::Uint8Array u = x.As<Napi::Uint8Array>();
    if (u.ByteLength() > maxPayload)
      throw makeError(env, "ETOOBIG", "frame of " + std::to_string(u.ByteLength()) + " bytes is larger than the ring's largest frame (" + std::to_string(maxPayload) + " bytes)");
    ptrs[i] = u.Data();
    lens[i] = u.ByteLength();
  }
}

/** Receiver-side polling: a native thread that watches the tail (spin, then sleep with backoff) and
 *  wakes JS through a thread-safe function; JS drains with poll(). The event loop never blocks. */
class Poller {
 public:
  std::atomic<bool> stop{false};
  std::atomic<bool> notified{false};
  std::thread th;
  Napi::ThreadSafeFunction tsfn;
  bool running = false;

  void start(Ring* ring, Napi::Env env, Napi::Function cb, uint32_t spin, uint32_t minUs, uint32_t maxUs) {
    tsfn = Napi::ThreadSafeFunction::New(env, cb, "decree-ring-poll", 0, 1);
    stop = false;
    notified = false;
    running = true;
    ring_ = ring;
    th = std::thread([this, ring, spin, minUs, maxUs]() {
      uint32_t idle = 0, sleepUs = minUs, busyUs = minUs;
      while (!stop.load(std::memory_order_acquire)) {
        if (ring->hasData()) {
          if (!notified.exchange(true)) {
            if (tsfn.NonBlockingCall() != napi_ok) break;  // the environment is going away
            busyUs = minUs;
          } else {
            busyUs = busyUs * 2 > 1000 ? 1000 : busyUs * 2;  // JS is busy: look less often
          }
          idle = 0;
          sleepUs = minUs;
          std::this_thread::sleep_for(std::chrono::microseconds(busyUs));  // JS is draining
          continue;
        }
        if (++idle <= spin) {
#if defined(__x86_64__)
          __builtin_ia32_pause();
#endif
          continue;
        }
        if (ring->wakeups) {
          ring->waitForData(maxUs);  // the writer's publish (or halt) wakes it; maxUs bounds the wait
          idle = 0;
        } else {
          std::this_thread::sleep_for(std::chrono::microseconds(sleepUs));
          sleepUs = sleepUs * 2 > maxUs ? maxUs : sleepUs * 2;
        }
      }
    });
  }
  Ring* ring_ = nullptr;
  void halt() {
    if (!running) return;
    stop.store(true, std::memory_order_release);
    if (ring_) {
      ring_->sleepWord().store(1);  // make sure the wake reaches a thread about to wait
      ring_->wakeReader();
    }
    if (th.joinable()) th.join();
    tsfn.Release();
    running = false;
  }
};

// ------------------------------------------------------------------------------------------ ShmRing
class ShmRing : public Napi::ObjectWrap<ShmRing> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "ShmRing",
                       {
                           InstanceMethod("sendMany", &ShmRing::SendMany),
                           InstanceMethod("send", &ShmRing::Send),
                           InstanceMethod("poll", &ShmRing::Poll),
                           InstanceMethod("startPolling", &ShmRing::StartPolling),
                           InstanceMethod("stopPolling", &ShmRing::StopPolling),
                           InstanceMethod("ref", &ShmRing::Ref_),
                           InstanceMethod("unref", &ShmRing::Unref_),
                           InstanceMethod("stats", &ShmRing::Stats),
                           InstanceMethod("writeTorn", &ShmRing::WriteTorn),
                           InstanceMethod("close", &ShmRing::Close),
                           InstanceAccessor("capacity", &ShmRing::Capacity, nullptr),
                           InstanceAccessor("maxPayload", &ShmRing::MaxPayload, nullptr),
                           InstanceAccessor("head", &ShmRing::Head, nullptr),
                           InstanceAccessor("tail", &ShmRing::Tail, nullptr),
                           InstanceAccessor("readerPid", &ShmRing::ReaderPid, nullptr),
                           InstanceAccessor("readerClosed", &ShmRing::ReaderClosed, nullptr),
                           InstanceAccessor("writerPid", &ShmRing::WriterPid, nullptr),
                           InstanceAccessor("inode", &ShmRing::Inode, nullptr),
                           InstanceAccessor("closed", &ShmRing::Closed, nullptr),
                       });
  }

  // new ShmRing(path, role: 'reader' | 'writer', capacity?)
  ShmRing(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ShmRing>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString())
      throw Napi::TypeError::New(env, "ShmRing(path, 'reader' | 'writer', capacity?)");
    path_ = info[0].As<Napi::String>();
    std::string role = info[1].As<Napi::String>();
    if (role != "reader" && role != "writer") throw Napi::TypeError::New(env, "role must be 'reader' or 'writer'");
    reader_ = role == "reader";
    uint64_t cap = 1 << 20;
    if (info.Length() > 2 && info[2].IsNumber()) cap = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
    if (reader_ && (cap < 4096 || (cap & (cap - 1)) != 0 || cap > (uint64_t(1) << 32)))
      throw makeError(env, "EINVAL", "ring capacity must be a power of two between 4096 and 4 GiB (got " + std::to_string(cap) + ")");
    if (reader_) openReader(env, cap);
    else openWriter(env);
    ring_ = new Ring(base_, Ring::capacityOf(base_));
    if (reader_) ring_->attachReader(static_cast<uint32_t>(getpid()));
    else ring_->attachWriter(static_cast<uint32_t>(getpid()));
  }

  ~ShmRing() override { release(); }

 private:
  void mapFd(Napi::Env env, int fd, uint64_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      close(fd);
      throw makeError(env, errnoName(e), "cannot map ring " + path_ + ": " + strerror(e));
    }
    struct stat st {};
    fstat(fd, &st);
    inode_ = static_cast<double>(st.st_ino);
    close(fd);
    base_ = static_cast<uint8_t*>(p);
    mapped_ = bytes;
  }

  // The receiver creates the ring, or reuses a valid one of the same capacity (a restarted receiver
  // goes on from the head it had published; writers keep their mapping). Anything else is replaced:
  // unlinked first, so a writer still mapping the old file sees a new inode and reopens.
  void openReader(Napi::Env env, uint64_t cap) {
    uint64_t bytes = decree::kRingHeaderBytes + cap;
    int fd = open(path_.c_str(), O_RDWR);
    if (fd >= 0) {
      struct stat st {};
      fstat(fd, &st);
      if (static_cast<uint64_t>(st.st_size) == bytes) {
        mapFd(env, fd, bytes);
        if (Ring::check(base_, bytes).empty()) return;
        munmap(base_, mapped_);
        base_ = nullptr;
      } else {
        close(fd);
      }
      unlink(path_.c_str());
    }
    std::string tmp = path_ + ".tmp." + std::to_string(getpid());
    fd = open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
      int e = errno;
      throw makeError(env, errnoName(e), "cannot create ring " + tmp + ": " + strerror(e));
    }
    if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      int e = errno;
      close(fd);
      unlink(tmp.c_str());
      throw makeError(env, errnoName(e), "cannot size ring " + tmp + ": " + strerror(e));
    }
    mapFd(env, fd, bytes);
    Ring::format(base_, cap);
    // appears under its name only once formatted: a writer never maps a half-made ring
    if (rename(tmp.c_str(), path_.c_str()) != 0) {
      int e = errno;
      unlink(tmp.c_str());
      throw makeError(env, errnoName(e), "cannot rename ring into " + path_ + ": " + strerror(e));
    }
  }

  void openWriter(Napi::Env env) {
    int fd = open(path_.c_str(), O_RDWR);
    if (fd < 0) {
      int e = errno;
      throw makeError(env, errnoName(e), "cannot open ring " + path_ + ": " + strerror(e) + (e == ENOENT ? " (its receiver has not created it yet)" : ""));
    }
    struct stat st {};
    fstat(fd, &st);
    mapFd(env, fd, static_cast<uint64_t>(st.st_size));
    std::string why = Ring::check(base_, mapped_);
    if (!why.empty()) {
      munmap(base_, mapped_);
      base_ = nullptr;
      throw makeError(env, "EBADRING", "ring " + path_ + " is not usable: " + why);
    }
  }

  void release() {
    poller_.halt();
    if (ring_) {
      if (reader_) ring_->detachReader();
      else ring_->detachWriter();
      delete ring_;
      ring_ = nullptr;
    }
    if (base_) {
      munmap(base_, mapped_);
      base_ = nullptr;
    }
  }

  Ring* live(Napi::Env env) {
    if (!ring_) throw makeError(env, "ECLOSED", "ring " + path_ + " is closed");
    return ring_;
  }
  void needWriter(Napi::Env env) {
    if (reader_) throw makeError(env, "EROLE", "ring " + path_ + " was opened as its reader: only the writer sends");
  }

  Napi::Value SendMany(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Ring* r = live(env);
    needWriter(env);
    std::vector<const uint8_t*> ptrs;
    std::vector<size_t> lens;
    collect(info[0], ptrs, lens, r->maxPayload());
    return Napi::Number::New(env, static_cast<double>(r->writeMany(ptrs.data(), lens.data(), ptrs.size())));
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Ring* r = live(env);
    needWriter(env);
    if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "send(Uint8Array)");
    Napi::Uint8Array u = info[0].As<Napi::Uint8Array>();
    if (u.ByteLength() > r->maxPayload())
      throw makeError(env, "ETOOBIG", "frame of " + std::to_string(u.ByteLength()) + " bytes is larger than the ring's largest frame (" + std::to_string(r->maxPayload()) + " bytes)");
    const uint8_t* p = u.Data();
    size_t n = u.ByteLength();
    return Napi::Boolean::New(env, r->writeMany(&p, &n, 1) == 1);
  }

  // poll(maxFrames = 4096, maxBytes = 16 MiB) -> Buffer[]
  Napi::Value Poll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Ring* r = live(env);
    if (!reader_) throw makeError(env, "EROLE", "ring " + path_ + " was opened as its writer: only the reader polls");
    size_t maxFrames = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 4096;
    uint64_t maxBytes = info.Length() > 1 && info[1].IsNumber() ? static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value()) : (16u << 20);
    poller_.notified.store(false);
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    r->consume(maxFrames, maxBytes, [&](const uint8_t* p, size_t n) { out.Set(i++, Napi::Buffer<uint8_t>::Copy(env, p, n)); });
    return out;
  }

  // startPolling(callback, { spin, minSleepUs, maxSleepUs })
  Napi::Value StartPolling(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Ring* r = live(env);
    if (!reader_) throw makeError(env, "EROLE", "only the reader polls");
    if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "startPolling(callback, options?)");
    uint32_t spin = 200, minUs = 20, maxUs = 20000;
    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Object o = info[1].As<Napi::Object>();
      if (o.Get("spin").IsNumber()) spin = o.Get("spin").As<Napi::Number>().Uint32Value();
      if (o.Get("minSleepUs").IsNumber()) minUs = std::max(1u, o.Get("minSleepUs").As<Napi::Number>().Uint32Value());
      if (o.Get("maxSleepUs").IsNumber()) maxUs = std::max(minUs, o.Get("maxSleepUs").As<Napi::Number>().Uint32Value());
    }
    poller_.halt();
    poller_.start(r, env, info[0].As<Napi::Function>(), spin, minUs, maxUs);
    return env.Undefined();
  }
  Napi::Value StopPolling(const Napi::CallbackInfo& info) {
    poller_.halt();
    return info.Env().Undefined();
  }
  Napi::Value Ref_(const Napi::CallbackInfo& info) {
    if (poller_.running) poller_.tsfn.Ref(info.Env());
    return info.Env().Undefined();
  }
  Napi::Value Unref_(const Napi::CallbackInfo& info) {
    if (poller_.running) poller_.tsfn.Unref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) { return statsObject(info.Env(), live(info.Env())->stats); }

  // writeTorn(frame, bytesWritten, corruptCrc, publishTail): the test hook for a writer dying mid-frame
  Napi::Value WriteTorn(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Ring* r = live(env);
    needWriter(env);
    Napi::Uint8Array u = info[0].As<Napi::Uint8Array>();
    r->writeTorn(u.Data(), u.ByteLength(), info[1].As<Napi::Number>().Uint32Value(), info[2].ToBoolean(), info[3].ToBoolean());
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    release();
    return info.Env().Undefined();
  }

  Napi::Value Capacity(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env())->capacity())); }
  Napi::Value MaxPayload(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env())->maxPayload())); }
  Napi::Value Head(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env())->head())); }
  Napi::Value Tail(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env())->tail())); }
  Napi::Value ReaderPid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live(info.Env())->readerPid()); }
  Napi::Value ReaderClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), live(info.Env())->readerClosed()); }
  Napi::Value WriterPid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live(info.Env())->writerPid()); }
  Napi::Value Inode(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), inode_); }
  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), ring_ == nullptr); }

  std::string path_;
  bool reader_ = false;
  uint8_t* base_ = nullptr;
  uint64_t mapped_ = 0;
  double inode_ = 0;
  Ring* ring_ = nullptr;
  Poller poller_;
};

// ------------------------------------------------------------------------------------- RdmaEndpoint
// One end of a ring over RDMA WRITE. Both ends hold a ring-formatted region registered for remote
// write. The sender writes frames into its local mirror, then posts WRITEs of the new bytes and of its
// writer line (tail, seq) to the same offsets of the receiver's region; the receiver consumes locally
// (waiting on a frame whose crc does not match yet: the tail may land before the bytes) and WRITEs its
// reader line (head) back into the sender's mirror, which is the sender's flow control.
class RdmaEndpoint : public Napi::ObjectWrap<RdmaEndpoint> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "RdmaEndpoint",
                       {
                           InstanceMethod("localInfo", &RdmaEndpoint::LocalInfo),
                           InstanceMethod("connect", &RdmaEndpoint::Connect),
                           InstanceMethod("sendMany", &RdmaEndpoint::SendMany),
                           InstanceMethod("poll", &RdmaEndpoint::Poll),
                           InstanceMethod("stats", &RdmaEndpoint::Stats),
                           InstanceMethod("close", &RdmaEndpoint::Close),
                       });
  }

  // new RdmaEndpoint({ device?, port?, gidIndex?, capacity?, role: 'reader' | 'writer' })
  RdmaEndpoint(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RdmaEndpoint>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
    std::string device = o.Get("device").IsString() ? std::string(o.Get("device").As<Napi::String>()) : "";
    int port = o.Get("port").IsNumber() ? o.Get("port").As<Napi::Number>().Int32Value() : 1;
    int gidIndex = o.Get("gidIndex").IsNumber() ? o.Get("gidIndex").As<Napi::Number>().Int32Value() : 0;
    uint64_t cap = o.Get("capacity").IsNumber() ? static_cast<uint64_t>(o.Get("capacity").As<Napi::Number>().Int64Value()) : (1 << 20);
    reader_ = !(o.Get("role").IsString() && std::string(o.Get("role").As<Napi::String>()) == "writer");
    if (cap < 4096 || (cap & (cap - 1)) != 0 || cap > (uint64_t(1) << 32))
      throw makeError(env, "EINVAL", "ring capacity must be a power of two between 4096 and 4 GiB");
    len_ = decree::kRingHeaderBytes + cap;
    void* p = nullptr;
    if (posix_memalign(&p, 4096, len_) != 0) throw makeError(env, "ENOMEM", "cannot allocate the RDMA ring");
    region_ = static_cast<uint8_t*>(p);
    Ring::format(region_, cap);
    try {
      ep_ = new decree::VerbsEndpoint(device, port, gidIndex, region_, len_);
    } catch (const decree::VerbsError& e) {
      free(region_);
      region_ = nullptr;
      throw makeError(env, e.code, e.what());
    }
    ring_ = new Ring(region_, cap);
    ring_->wakeups = false;  // remote writes wake nobody: the RDMA reader is polled
    if (reader_) ring_->attachReader(static_cast<uint32_t>(getpid()));
    else ring_->attachWriter(static_cast<uint32_t>(getpid()));
  }
  ~RdmaEndpoint() override { release(); }

 private:
  void release() {
    delete ep_;
    ep_ = nullptr;
    delete ring_;
    ring_ = nullptr;
    free(region_);
    region_ = nullptr;
  }
  decree::VerbsEndpoint* live(Napi::Env env) {
    if (!ep_) throw makeError(env, "ECLOSED", "RDMA endpoint is closed");
    return ep_;
  }
  template <typename F>
  auto verbs(Napi::Env env, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const decree::VerbsError& e) {
      throw makeError(env, e.code, e.what());
    }
  }

  Napi::Value LocalInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    decree::RdmaPeerInfo p = live(env)->local();
    Napi::Object o = Napi::Object::New(env);
    o.Set("lid", p.lid);
    o.Set("qpn", p.qpn);
    o.Set("psn", p.psn);
    o.Set("rkey", p.rkey);
    o.Set("addr", Napi::BigInt::New(env, static_cast<uint64_t>(p.addr)));
    o.Set("len", Napi::Number::New(env, static_cast<double>(p.len)));
    o.Set("gid", Napi::Buffer<uint8_t>::Copy(env, p.gid, 16));
    o.Set("device", live(env)->deviceName());
    return o;
  }

  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    decree::RdmaPeerInfo p;
    p.lid = o.Get("lid").As<Napi::Number>().Uint32Value();
    p.qpn = o.Get("qpn").As<Napi::Number>().Uint32Value();
    p.psn = o.Get("psn").As<Napi::Number>().Uint32Value();
    p.rkey = o.Get("rkey").As<Napi::Number>().Uint32Value();
    bool lossless = false;
    p.addr = o.Get("addr").As<Napi::BigInt>().Uint64Value(&lossless);
    p.len = static_cast<uint64_t>(o.Get("len").As<Napi::Number>().Int64Value());
    if (p.len != len_) throw makeError(env, "EINVAL", "the peer's ring is " + std::to_string(p.len) + " bytes, ours " + std::to_string(len_));
    if (o.Get("gid").IsTypedArray()) {
      Napi::Uint8Array g = o.Get("gid").As<Napi::Uint8Array>();
      memcpy(p.gid, g.Data(), std::min<size_t>(16, g.ByteLength()));
    }
    verbs(env, [&]() { live(env)->connect(p); });
    return env.Undefined();
  }

  Napi::Value SendMany(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    decree::VerbsEndpoint* ep = live(env);
    if (reader_) throw makeError(env, "EROLE", "this RDMA endpoint is a reader");
    std::vector<const uint8_t*> ptrs;
    std::vector<size_t> lens;
    collect(info[0], ptrs, lens, ring_->maxPayload());
    // take frames only when their WRITEs can be posted: frames in the mirror that never went out would
    // leave a hole below the next published tail
    if (ptrs.empty() || !verbs(env, [&]() { return ep->canPost(); })) return Napi::Number::New(env, 0);
    uint64_t from = ring_->tail();
    size_t n = ring_->writeMany(ptrs.data(), lens.data(), ptrs.size());
    uint64_t to = ring_->tail();
    if (to != from) {
      uint64_t cap = ring_->capacity(), a = from & (cap - 1), len = to - from;
      std::vector<std::pair<uint64_t, uint64_t>> ranges;
      if (a + len <= cap) ranges.push_back({decree::kRingHeaderBytes + a, len});
      else {
        ranges.push_back({decree::kRingHeaderBytes + a, cap - a});
        ranges.push_back({decree::kRingHeaderBytes, len - (cap - a)});
      }
      ranges.push_back({64, 16});  // tail + seq, after the bytes (the reader checks crc anyway)
      bool ok = verbs(env, [&]() { return ep->writeRanges(ranges); });
      if (!ok) throw makeError(env, "EAGAIN", "RDMA send queue full");  // not reached: canPost() above
    }
    return Napi::Number::New(env, static_cast<double>(n));
  }

  Napi::Value Poll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    decree::VerbsEndpoint* ep = live(env);
    if (!reader_) throw makeError(env, "EROLE", "this RDMA endpoint is a writer");
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    // a frame that stays invalid for many polls is torn (its writer died): skip it then
    bool wait = stuckPolls_ < 10000;
    ring_->consume(4096, 16u << 20, [&](const uint8_t* p, size_t n) { out.Set(i++, Napi::Buffer<uint8_t>::Copy(env, p, n)); }, wait);
    stuckPolls_ = ring_->stuck ? stuckPolls_ + 1 : 0;
    // the head back to the writer (its flow control); a write-back the full send queue refused is
    // retried on the next poll, so a writer waiting for room always learns of it
    if (ring_->head() != publishedHead_ && verbs(env, [&]() { return ep->writeRanges({{128, 16}}); })) publishedHead_ = ring_->head();
    return out;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) { return statsObject(info.Env(), ring_ ? ring_->stats : decree::RingStats{}); }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    release();
    return info.Env().Undefined();
  }

  bool reader_ = true;
  uint8_t* region_ = nullptr;
  uint64_t len_ = 0;
  decree::VerbsEndpoint* ep_ = nullptr;
  Ring* ring_ = nullptr;
  uint32_t stuckPolls_ = 0;
  /** the head the writer was last sent (reader) */
  uint64_t publishedHead_ = 0;
};

Napi::Value ListRdmaDevices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<decree::RdmaDeviceInfo> ds;
  try {
    ds = decree::listRdmaDevices();
  } catch (const decree::VerbsError& e) {
    throw makeError(env, e.code, e.what());
  }
  Napi::Array a = Napi::Array::New(env, ds.size());
  for (size_t i = 0; i < ds.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", ds[i].name);
    o.Set("guid", ds[i].guid);
    o.Set("nodeType", ds[i].nodeType);
    o.Set("transport", ds[i].transport);
    a.Set(static_cast<uint32_t>(i), o);
  }
  return a;
}

Napi::Value Crc32c(const Napi::CallbackInfo& info) {
  Napi::Uint8Array u = info[0].As<Napi::Uint8Array>();
  return Napi::Number::New(info.Env(), decree::crc32c(0, u.Data(), u.ByteLength()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("ShmRing", ShmRing::Init(env));
  exports.Set("RdmaEndpoint", RdmaEndpoint::Init(env));
  exports.Set("listRdmaDevices", Napi::Function::New(env, ListRdmaDevices));
  exports.Set("crc32c", Napi::Function::New(env, Crc32c));
  exports.Set("verbs", Napi::Boolean::New(env, decree::verbsAvailable()));
  exports.Set("backend", Napi::String::New(env, decree::verbsAvailable() ? "ibverbs" : "none"));
  exports.Set("headerBytes", Napi::Number::New(env, static_cast<double>(decree::kRingHeaderBytes)));
  exports.Set("frameHeaderBytes", Napi::Number::New(env, static_cast<double>(decree::kFrameHeader)));
  return exports;
}

}  // namespace

NODE_API_MODULE(rdma_transport, Init)
