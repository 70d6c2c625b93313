// SPDX-License-Identifier: Apache-2.0
//
// larder: the core, in one include. Everything here needs only abseil; the
// Redis parts are behind <larder/redis.h>.
#ifndef LARDER_LARDER_H_
#define LARDER_LARDER_H_

#include "larder/bytes_weigher.h"
#include "larder/cache.h"
#include "larder/clock.h"
#include "larder/codec.h"
#include "larder/executor.h"
#include "larder/invalidation_bus.h"
#include "larder/load_guard.h"
#include "larder/local_cache.h"
#include "larder/local_store.h"
#include "larder/single_flight.h"
#include "larder/stats.h"
#include "larder/store.h"
#include "larder/tiered_store.h"
#include "larder/version.h"
#include "larder/writer.h"

#endif  // LARDER_LARDER_H_
