// Headers that kernels_impl.inc needs, included at global scope by each ISA build before it opens its
// namespace (standard headers must never be included inside a namespace).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <new>

#include "core/half.h"
#include "cpu/kernels.h"
#include "cpu/threadpool.h"
