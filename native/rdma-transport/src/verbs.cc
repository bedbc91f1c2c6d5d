#include "verbs.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#ifdef DECREE_HAVE_IBVERBS
#include <infiniband/verbs.h>
#endif

namespace decree {

#ifdef DECREE_HAVE_IBVERBS

static const char* kNoDevice = "no RDMA device found (ibv_get_device_list returned 0 devices)";

bool verbsAvailable() { return true; }

static std::string hex64(uint64_t v) {
  char b[24];
  snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

std::vector<RdmaDeviceInfo> listRdmaDevices() {
  std::vector<RdmaDeviceInfo> out;
  int num = 0;
  ibv_device** list = ibv_get_device_list(&num);
  if (!list) return out;  // no kernel support (ENOSYS) or no devices: none either way
  for (int i = 0; i < num; i++) {
    RdmaDeviceInfo d;
    d.name = ibv_get_device_name(list[i]);
    d.guid = hex64(be64toh(ibv_get_device_guid(list[i])));
    d.nodeType = ibv_node_type_str(list[i]->node_type);
    switch (list[i]->transport_type) {
      case IBV_TRANSPORT_IB: d.transport = "infiniband"; break;
      case IBV_TRANSPORT_IWARP: d.transport = "iwarp"; break;
      case IBV_TRANSPORT_USNIC: d.transport = "usnic"; break;
      case IBV_TRANSPORT_USNIC_UDP: d.transport = "usnic-udp"; break;
      case IBV_TRANSPORT_UNSPECIFIED: d.transport = "unspecified"; break;
      default: d.transport = "unknown"; break;
    }
    out.push_back(d);
  }
  ibv_free_device_list(list);
  return out;
}

struct VerbsImpl {
  ibv_context* ctx = nullptr;
  ibv_pd* pd = nullptr;
  ibv_cq* cq = nullptr;
  ibv_qp* qp = nullptr;
  ibv_mr* mr = nullptr;
  int port = 1, gidIndex = 0;
  uint8_t* region = nullptr;
  uint64_t len = 0;
  uint32_t psn = 0;
  uint16_t lid = 0;
  ibv_gid gid{};
  RdmaPeerInfo remote{};
  bool connected = false;
  int depth = 256, outstanding = 0;
  std::string name;

  ~VerbsImpl() {
    if (qp) ibv_destroy_qp(qp);
    if (mr) ibv_dereg_mr(mr);
    if (cq) ibv_destroy_cq(cq);
    if (pd) ibv_dealloc_pd(pd);
    if (ctx) ibv_close_device(ctx);
  }
};

static VerbsError sysFail(const std::string& what) {
  int e = errno;
  return VerbsError("EVERBS", what + " failed: " + strerror(e));
}

VerbsEndpoint::VerbsEndpoint(const std::string& device, int port, int gidIndex, uint8_t* region, uint64_t len) : impl_(nullptr) {
  int num = 0;
  ibv_device** list = ibv_get_device_list(&num);
  if (!list || num == 0) {
    if (list) ibv_free_device_list(list);
    throw VerbsError("ENODEV", kNoDevice);
  }
  ibv_device* dev = nullptr;
  for (int i = 0; i < num; i++)
    if (device.empty() || device == ibv_get_device_name(list[i])) {
      dev = list[i];
      break;
    }
  if (!dev) {
    ibv_free_device_list(list);
    throw VerbsError("ENODEV", "no RDMA device named \"" + device + "\" (ibv_get_device_list returned " + std::to_string(num) + " devices)");
  }
  auto* im = new VerbsImpl();
  try {
    im->name = ibv_get_device_name(dev);
    im->port = port;
    im->gidIndex = gidIndex;
    im->region = region;
    im->len = len;
    im->ctx = ibv_open_device(dev);
    ibv_free_device_list(list);
    list = nullptr;
    if (!im->ctx) throw sysFail("ibv_open_device(" + im->name + ")");
    im->pd = ibv_alloc_pd(im->ctx);
    if (!im->pd) throw sysFail("ibv_alloc_pd");
    im->cq = ibv_create_cq(im->ctx, im->depth, nullptr, nullptr, 0);
    if (!im->cq) throw sysFail("ibv_create_cq");
    im->mr = ibv_reg_mr(im->pd, region, len, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
    if (!im->mr) throw sysFail("ibv_reg_mr");
    ibv_qp_init_attr qia{};
    qia.send_cq = im->cq;
    qia.recv_cq = im->cq;
    qia.qp_type = IBV_QPT_RC;
    qia.cap.max_send_wr = im->depth;
    qia.cap.max_recv_wr = 1;
    qia.cap.max_send_sge = 1;
    qia.cap.max_recv_sge = 1;
    im->qp = ibv_create_qp(im->pd, &qia);
    if (!im->qp) throw sysFail("ibv_create_qp");
    ibv_port_attr pa{};
    if (ibv_query_port(im->ctx, static_cast<uint8_t>(port), &pa)) throw sysFail("ibv_query_port");
    im->lid = pa.lid;
    if (ibv_query_gid(im->ctx, static_cast<uint8_t>(port), gidIndex, &im->gid)) memset(&im->gid, 0, sizeof im->gid);
    im->psn = std::random_device{}() & 0xffffff;
    ibv_qp_attr a{};
    a.qp_state = IBV_QPS_INIT;
    a.pkey_index = 0;
    a.port_num = static_cast<uint8_t>(port);
    a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
    if (ibv_modify_qp(im->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)) throw sysFail("ibv_modify_qp(INIT)");
  } catch (...) {
    if (list) ibv_free_device_list(list);
    delete im;
    throw;
  }
  impl_ = im;
}

VerbsEndpoint::~VerbsEndpoint() { delete impl_; }

std::string VerbsEndpoint::deviceName() const { return impl_->name; }

RdmaPeerInfo VerbsEndpoint::local() const {
  RdmaPeerInfo p;
  p.lid = impl_->lid;
  p.qpn = impl_->qp->qp_num;
  p.psn = impl_->psn;
  p.rkey = impl_->mr->rkey;
  p.addr = reinterpret_cast<uintptr_t>(impl_->region);
  p.len = impl_->len;
  memcpy(p.gid, impl_->gid.raw, 16);
  return p;
}

void VerbsEndpoint::connect(const RdmaPeerInfo& r) {
  VerbsImpl* im = impl_;
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = IBV_MTU_1024;
  a.dest_qp_num = r.qpn;
  a.rq_psn = r.psn;
  a.max_dest_rd_atomic = 1;
  a.min_rnr_timer = 12;
  a.ah_attr.dlid = static_cast<uint16_t>(r.lid);
  a.ah_attr.sl = 0;
  a.ah_attr.src_path_bits = 0;
  a.ah_attr.port_num = static_cast<uint8_t>(im->port);
  bool global = false;
  for (int i = 0; i < 16; i++) global = global || r.gid[i] != 0;
  if (global) {  // RoCE / routed IB: address by GID
    a.ah_attr.is_global = 1;
    memcpy(a.ah_attr.grh.dgid.raw, r.gid, 16);
    a.ah_attr.grh.sgid_index = static_cast<uint8_t>(im->gidIndex);
    a.ah_attr.grh.hop_limit = 1;
  }
  if (ibv_modify_qp(im->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
    throw sysFail("ibv_modify_qp(RTR)");
  ibv_qp_attr b{};
  b.qp_state = IBV_QPS_RTS;
  b.timeout = 14;
  b.retry_cnt = 7;
  b.rnr_retry = 7;
  b.sq_psn = im->psn;
  b.max_rd_atomic = 1;
  if (ibv_modify_qp(im->qp, &b, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC))
    throw sysFail("ibv_modify_qp(RTS)");
  im->remote = r;
  im->connected = true;
}

bool VerbsEndpoint::writeRanges(const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  VerbsImpl* im = impl_;
  if (!im->connected) throw VerbsError("ENOTCONN", "RDMA endpoint is not connected (call connect with the peer's info first)");
  if (ranges.empty()) return true;
  reap();
  if (im->outstanding + 1 > im->depth / 2) return false;
  std::vector<ibv_sge> sges(ranges.size());
  std::vector<ibv_send_wr> wrs(ranges.size());
  for (size_t i = 0; i < ranges.size(); i++) {
    sges[i].addr = reinterpret_cast<uintptr_t>(im->region) + ranges[i].first;
    sges[i].length = static_cast<uint32_t>(ranges[i].second);
    sges[i].lkey = im->mr->lkey;
    memset(&wrs[i], 0, sizeof wrs[i]);
    wrs[i].wr_id = i;
    wrs[i].opcode = IBV_WR_RDMA_WRITE;
    wrs[i].sg_list = &sges[i];
    wrs[i].num_sge = 1;
    wrs[i].wr.rdma.remote_addr = im->remote.addr + ranges[i].first;
    wrs[i].wr.rdma.rkey = im->remote.rkey;
    wrs[i].next = i + 1 < ranges.size() ? &wrs[i + 1] : nullptr;
    // only the last of the chain is signaled: RC completes in order
    wrs[i].send_flags = i + 1 == ranges.size() ? IBV_SEND_SIGNALED : 0;
  }
  ibv_send_wr* bad = nullptr;
  if (ibv_post_send(im->qp, wrs.data(), &bad)) throw sysFail("ibv_post_send");
  im->outstanding++;
  return true;
}

bool VerbsEndpoint::canPost() {
  if (!impl_->connected) throw VerbsError("ENOTCONN", "RDMA endpoint is not connected (call connect with the peer's info first)");
  reap();
  return impl_->outstanding + 1 <= impl_->depth / 2;
}

int VerbsEndpoint::reap() {
  VerbsImpl* im = impl_;
  ibv_wc wc[16];
  int total = 0;
  for (;;) {
    int n = ibv_poll_cq(im->cq, 16, wc);
    if (n < 0) throw VerbsError("EVERBS", "ibv_poll_cq failed");
    for (int i = 0; i < n; i++)
      if (wc[i].status != IBV_WC_SUCCESS) throw VerbsError("EVERBS", std::string("RDMA write failed: ") + ibv_wc_status_str(wc[i].status));
    im->outstanding -= n;
    total += n;
    if (n < 16) return total;
  }
}

#else  // built without libibverbs

bool verbsAvailable() { return false; }
static VerbsError notBuilt() {
  return VerbsError("ENOTSUP", "rdma-transport was built without libibverbs (install libibverbs-dev and rebuild: node tools/scripts/build-native.mjs rdma-transport)");
}
std::vector<RdmaDeviceInfo> listRdmaDevices() { throw notBuilt(); }
struct VerbsImpl {};
VerbsEndpoint::VerbsEndpoint(const std::string&, int, int, uint8_t*, uint64_t) : impl_(nullptr) { throw notBuilt(); }
VerbsEndpoint::~VerbsEndpoint() {}
RdmaPeerInfo VerbsEndpoint::local() const { return {}; }
void VerbsEndpoint::connect(const RdmaPeerInfo&) { throw notBuilt(); }
bool VerbsEndpoint::writeRanges(const std::vector<std::pair<uint64_t, uint64_t>>&) { throw notBuilt(); }
int VerbsEndpoint::reap() { return 0; }
bool VerbsEndpoint::canPost() { throw notBuilt(); }
std::string VerbsEndpoint::deviceName() const { return ""; }

#endif

}  // namespace decree
