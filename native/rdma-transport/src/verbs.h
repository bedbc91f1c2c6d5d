// The ibverbs backend: device discovery and an RDMA WRITE ring between two endpoints.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace decree {

struct RdmaDeviceInfo {
  std::string name;
  std::string guid;       // node GUID, hex
  std::string nodeType;   // "ca", "rnic", ...
  std::string transport;  // "infiniband", "iwarp", "usnic", ...
};

class VerbsError : public std::runtime_error {
 public:
  VerbsError(const std::string& code, const std::string& msg) : std::runtime_error(msg), code(code) {}
  std::string code;
};

bool verbsAvailable();
/** the devices ibv_get_device_list reports (none here); throws VerbsError when built without libibverbs */
std::vector<RdmaDeviceInfo> listRdmaDevices();

/** What one side tells the other out of band (over TCP, a file, ...) before connecting. */
struct RdmaPeerInfo {
  uint32_t lid = 0, qpn = 0, psn = 0, rkey = 0;
  uint64_t addr = 0, len = 0;
  uint8_t gid[16] = {0};
};

struct VerbsImpl;

/**
 * One end of a ring pair over an RC queue pair. `region` (len bytes, a formatted Ring) is registered
 * for remote write: as a receiver the peer writes frames and the tail into it; as a sender it is the
 * local mirror whose head line the peer writes.
 */
class VerbsEndpoint {
 public:
  VerbsEndpoint(const std::string& device, int port, int gidIndex, uint8_t* region, uint64_t len);
  ~VerbsEndpoint();
  RdmaPeerInfo local() const;
  void connect(const RdmaPeerInfo& remote);
  /** posts RDMA WRITEs of the given local byte ranges to the same offsets of the remote region, in
   *  order, one work-request chain; false when the send queue is full */
  bool writeRanges(const std::vector<std::pair<uint64_t, uint64_t>>& ranges);
  /** reaps completions, then whether one more work-request chain may be posted (false: the send queue is full) */
  bool canPost();
  /** reaps completions; throws VerbsError on a failed one */
  int reap();
  std::string deviceName() const;

 private:
  VerbsImpl* impl_;
};

}  // namespace decree
