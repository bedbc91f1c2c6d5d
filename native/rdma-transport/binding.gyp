{
  "variables": {
    "verbs_backend%": "<!(node detect-backend.cjs)"
  },
  "targets": [
    {
      "target_name": "rdma_transport",
      "sources": ["src/addon.cc", "src/ring.cc", "src/verbs.cc", "../common/crc32c.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "../common"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lpthread"],
      "conditions": [
        ["verbs_backend=='ibverbs'", {
          "defines": ["DECREE_HAVE_IBVERBS=1"],
          "libraries": ["-libverbs"]
        }]
      ]
    }
  ]
}
