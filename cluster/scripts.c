/*
 * scripts.c - the Lua scripts that make each lease operation one atomic step in Redis.
 *
 * Every script reads the clock with TIME (Redis' clock: node clocks never matter) and first
 * notices an emptied Redis: when {sluice}:epoch is missing it is set again together with
 * {sluice}:grace, which lives one lease ttl; while it lives, acquire refuses (code 2) and only
 * renewals add members, so the connections open before the restart get their leases back
 * first and the receiver never sees more than the limit.  Redis 7 replicates the scripts'
 * effects, so TIME followed by writes is allowed.
 *   acquire  KEYS lease epoch grace; ARGV member limit ttl -> {0 ok | 1 full | 2 grace, in_use}
 *   acquire_all  KEYS epoch grace lease...; ARGV member ttl limit... (one per lease key) ->
 *            {0, 0, 0} with every lease taken, or {1 full | 2 grace, i, in_use} for the first
 *            key i (1-based) that refused, none taken then: acquire's steps key by key, the
 *            leases of the keys before i removed again, as a caller giving them back would
 *   renew    KEYS lease epoch grace; ARGV limit ttl readd member... -> {1 kept | 2 re-added |
 *            0 lost (missing, the counter full) | 3 gone (missing, readd 0)...}: a missing member
 *            is re-added only while Redis' grace lives or when readd is 1 (the caller's renewals
 *            were interrupted, so Redis may have let it expire); otherwise its worker gave it
 *            back while the renewal was on its way, and re-adding it would count a closed
 *            connection for a whole ttl
 *   count    KEYS lease -> members alive now
 *   beat     KEYS nodes holds node; ARGV node holds ttl -> nodes alive (heartbeat within ttl);
 *            the node's own key {sluice}:node:NAME lives one ttl (its holds as value)
 * Concurrency: Redis runs each script alone.
 * Trust boundary: arguments are ours; a limit below 0 never reaches a script (no limit, no
 * lease).
 */
#include "cluster_impl.h"

#define NOW                                                                                        \
    "local t = redis.call('TIME') "                                                                \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
#define EPOCH                                                                                      \
    "if redis.call('EXISTS', KEYS[2]) == 0 then "                                                  \
    "  redis.call('SET', KEYS[2], now) "                                                           \
    "  redis.call('SET', KEYS[3], now, 'PX', ttl) "                                                \
    "end "

static const char *const scripts[SL_SCRIPT__COUNT] = {
    [SL_SCRIPT_ACQUIRE] = NOW "local ttl = tonumber(ARGV[3]) " EPOCH
                              "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "
                              "local n = redis.call('ZCARD', KEYS[1]) "
                              "if redis.call('ZSCORE', KEYS[1], ARGV[1]) then "
                              "  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1]) "
                              "  redis.call('PEXPIRE', KEYS[1], 2 * ttl) "
                              "  return {0, n} "
                              "end "
                              "if redis.call('EXISTS', KEYS[3]) == 1 then return {2, n} end "
                              "if n >= tonumber(ARGV[2]) then return {1, n} end "
                              "redis.call('ZADD', KEYS[1], now + ttl, ARGV[1]) "
                              "redis.call('PEXPIRE', KEYS[1], 2 * ttl) "
                              "return {0, n + 1}",
    [SL_SCRIPT_ACQUIRE_ALL] =
        NOW "local ttl = tonumber(ARGV[2]) "
            "if redis.call('EXISTS', KEYS[1]) == 0 then "
            "  redis.call('SET', KEYS[1], now) "
            "  redis.call('SET', KEYS[2], now, 'PX', ttl) "
            "end "
            "for i = 3, #KEYS do "
            "  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now) "
            "  local n = redis.call('ZCARD', KEYS[i]) "
            "  local code = 0 "
            "  if not redis.call('ZSCORE', KEYS[i], ARGV[1]) then "
            "    if redis.call('EXISTS', KEYS[2]) == 1 then code = 2 "
            "    elseif n >= tonumber(ARGV[i]) then code = 1 end "
            "  end "
            "  if code > 0 then "
            "    for j = 3, i - 1 do redis.call('ZREM', KEYS[j], ARGV[1]) end "
            "    return {code, i - 2, n} "
            "  end "
            "end "
            "for i = 3, #KEYS do "
            "  redis.call('ZADD', KEYS[i], now + ttl, ARGV[1]) "
            "  redis.call('PEXPIRE', KEYS[i], 2 * ttl) "
            "end "
            "return {0, 0, 0}",
    [SL_SCRIPT_RENEW] =
        NOW "local ttl = tonumber(ARGV[2]) " EPOCH "local limit = tonumber(ARGV[1]) "
            "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "
            "local n = redis.call('ZCARD', KEYS[1]) "
            "local out = {} "
            "local readd = ARGV[3] == '1' or redis.call('EXISTS', KEYS[3]) == 1 "
            "for i = 4, #ARGV do "
            "  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then "
            "    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i]) "
            "    out[#out + 1] = 1 "
            "  elseif not readd then "
            "    out[#out + 1] = 3 "
            "  elseif n < limit then "
            "    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i]) "
            "    n = n + 1 "
            "    out[#out + 1] = 2 "
            "  else "
            "    out[#out + 1] = 0 "
            "  end "
            "end "
            "redis.call('PEXPIRE', KEYS[1], 2 * ttl) "
            "return out",
    [SL_SCRIPT_COUNT] = NOW "return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')",
    [SL_SCRIPT_BEAT] =
        NOW "local ttl = tonumber(ARGV[3]) "
            "redis.call('ZADD', KEYS[1], now, ARGV[1]) "
            "redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) "
            "redis.call('SET', KEYS[3], ARGV[2], 'PX', ttl) "
            "local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - 86400000) "
            "for _, name in ipairs(old) do "
            "  redis.call('ZREM', KEYS[1], name) "
            "  redis.call('HDEL', KEYS[2], name) "
            "end "
            "return redis.call('ZCOUNT', KEYS[1], now - ttl, '+inf')",
};

/* sl_cluster_script - the Lua text of script s */
const char *sl_cluster_script(int s)
{
    return s >= 0 && s < SL_SCRIPT__COUNT ? scripts[s] : "return nil";
}
