// A 64-byte aligned, uninitialised array owned by the kernels (workspaces, packed weights).
#pragma once
#include <cstdlib>
#include <cstring>
#include <new>

#include "rnnfast/common.h"

namespace rnnfast {

template <typename T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(index_t n) { resize(n); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr; o.size_ = 0; }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) { release(); data_ = o.data_; size_ = o.size_; o.data_ = nullptr; o.size_ = 0; }
    return *this;
  }
  ~Buffer() { release(); }

  // Reallocates only when growing; contents are not kept. Throws std::bad_alloc.
  void resize(index_t n) {
    if (n <= size_) { size_ = n; return; }
    release();
    std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
    bytes = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
    if (!p) throw std::bad_alloc();
    data_ = static_cast<T*>(p);
    size_ = n;
  }
  void zero() { if (size_) std::memset(data_, 0, static_cast<std::size_t>(size_) * sizeof(T)); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  index_t size() const { return size_; }
  T& operator[](index_t i) { return data_[i]; }
  const T& operator[](index_t i) const { return data_[i]; }

 private:
  void release() { std::free(data_); data_ = nullptr; size_ = 0; }
  T* data_ = nullptr;
  index_t size_ = 0;
};

}  // namespace rnnfast
