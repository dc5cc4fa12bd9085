// Memory kept between calls. A training loop calls the same layer with the same shapes again and
// again; buffers of several MiB freed at the end of every call let the C library trim its heap
// and hand the memory back to the system, so that the next call touches fresh pages (thousands
// of page faults per call; bench/RESULTS.md). A ScratchCache keeps a few idle objects instead:
// a call takes one (a new one when none is idle, e.g. while another Python thread holds it),
// sizes its buffers with fit(), and gives it back. What the cache keeps is bounded: at most
// `slots` idle objects of at most `max_bytes` together (an object that would pass the bound is
// freed when given back), and fit() reallocates a buffer at its exact size when a call needs
// more, or less than a quarter, of what it holds (a shape changed). Thread-safe.
#pragma once
#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "rnnfast/buffer.h"

namespace rnnfast::detail {

// b holding at least n elements, reallocated (contents not kept) when it holds fewer, or more
// than four times as many (and more than 4096). Its size() stays what was allocated, so that a
// smaller call in between does not make the next larger one reallocate.
template <typename T>
T* fit(Buffer<T>& b, index_t n) {
  if (n > b.size() || (b.size() > 4 * n && b.size() > 4096)) {
    b = Buffer<T>();
    b.resize(n);
  }
  return b.data();
}

template <typename T>
std::size_t bytes_of(const Buffer<T>& b) {
  return static_cast<std::size_t>(b.size()) * sizeof(T);
}

// X: default-constructible, with std::size_t bytes() const (the memory it holds).
template <typename X>
class ScratchCache {
 public:
  ScratchCache(std::size_t slots, std::size_t max_bytes) : slots_(slots), max_bytes_(max_bytes) {}
  ScratchCache(const ScratchCache&) = delete;
  ScratchCache& operator=(const ScratchCache&) = delete;

  // An idle object, or a new one.
  std::unique_ptr<X> acquire() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!idle_.empty()) {
        std::unique_ptr<X> x = std::move(idle_.back().first);
        idle_bytes_ -= idle_.back().second;
        idle_.pop_back();
        return x;
      }
    }
    return std::make_unique<X>();
  }

  // Keeps x for a later acquire() if the bound allows, else frees it (outside the lock).
  void release(std::unique_ptr<X> x) {
    if (!x) return;
    const std::size_t bytes = x->bytes();
    std::lock_guard<std::mutex> lock(mutex_);
    if (idle_.size() < slots_ && idle_bytes_ + bytes <= max_bytes_) {
      idle_.emplace_back(std::move(x), bytes);
      idle_bytes_ += bytes;
    }
  }

  // An object for the scope of a call, given back when it ends (also when the call throws).
  class Lease {
   public:
    explicit Lease(ScratchCache& cache) : cache_(cache), x_(cache.acquire()) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { cache_.release(std::move(x_)); }
    X& operator*() { return *x_; }
    X* operator->() { return x_.get(); }

   private:
    ScratchCache& cache_;
    std::unique_ptr<X> x_;
  };

  // Frees every idle object.
  void clear() {
    std::vector<std::pair<std::unique_ptr<X>, std::size_t>> drop;
    std::lock_guard<std::mutex> lock(mutex_);
    drop.swap(idle_);
    idle_bytes_ = 0;
  }

  // The idle objects and the bytes they hold.
  std::pair<std::size_t, std::size_t> idle() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {idle_.size(), idle_bytes_};
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::unique_ptr<X>, std::size_t>> idle_;  // (object, its bytes)
  std::size_t idle_bytes_ = 0;
  std::size_t slots_, max_bytes_;
};

}  // namespace rnnfast::detail
