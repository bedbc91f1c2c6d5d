{
  "variables": {
    "pmem_backend%": "<!(node detect-backend.cjs)"
  },
  "targets": [
    {
      "target_name": "pmem_log",
      "sources": ["src/pmem_log.cc", "../common/crc32c.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "../common"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["pmem_backend=='libpmem'", {
          "defines": ["DECREE_HAVE_LIBPMEM=1"],
          "libraries": ["-lpmem"]
        }]
      ]
    }
  ]
}
