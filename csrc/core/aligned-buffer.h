// A 64-byte aligned float buffer that grows on demand and is reused: workspaces live across
// calls so that no call page-faults fresh memory.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>

namespace fastrnn {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) { resize(n); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), size_(o.size_), cap_(o.cap_) {
    o.data_ = nullptr;
    o.size_ = o.cap_ = 0;
  }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = o.data_;
      size_ = o.size_;
      cap_ = o.cap_;
      o.data_ = nullptr;
      o.size_ = o.cap_ = 0;
    }
    return *this;
  }
  ~AlignedBuffer() { std::free(data_); }

  // Grows (never shrinks) to hold n floats; contents are not preserved when it grows.
  void resize(size_t n) {
    if (n > cap_) {
      // 16 floats of slack: kernels may read one full vector past a row's last element.
      const size_t padded = n + 16;
      if (padded > std::numeric_limits<size_t>::max() / sizeof(float) - 64)
        throw std::length_error("fastrnn: buffer size overflows");
      const size_t bytes = (padded * sizeof(float) + 63) / 64 * 64;
      void* p = std::aligned_alloc(64, bytes);
      if (!p) throw std::bad_alloc();
      std::free(data_);
      data_ = static_cast<float*>(p);
      cap_ = padded;
      std::memset(data_, 0, bytes);
    }
    size_ = n;
  }
  void zero() {
    if (data_) std::memset(data_, 0, size_ * sizeof(float));
  }
  float* data() { return data_; }
  const float* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  float* data_ = nullptr;
  size_t size_ = 0;
  size_t cap_ = 0;
};

}  // namespace fastrnn
