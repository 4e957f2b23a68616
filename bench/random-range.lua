-- wrk script: random 4 KiB-aligned single-range GETs.
--
--   wrk ... -s random-range.lua URL -- size=BYTES [block=4096] [extents=FILE] [paths=FILE]
--
-- size=BYTES    the disk size: offsets are drawn uniformly from [0, size) in whole blocks.
-- extents=FILE  instead of the whole disk, draw only from these extents ("start length" per
--               line, block-aligned), weighted by length: the allocated parts of a sparse disk.
-- paths=FILE    spread the requests over these request paths (one per line, e.g.
--               /images/multi-17/data) instead of the URL's path; each has `size` bytes.
-- block=BYTES   request length (default 4096).
--
-- No response() hook on purpose: defining one makes wrk hand every body to Lua, which would
-- cost the client CPU it shares with the server on a 2-core box. Errors show up as wrk's
-- "Non-2xx or 3xx responses" (status >= 400), which run.sh treats as a failed run.

local size, block = 0, 4096
local starts, cumulative, total = nil, nil, 0   -- extents, as cumulative block counts
local paths = nil

local function read_lines(file)
  local lines = {}
  for line in io.lines(file) do
    if line:match("%S") then lines[#lines + 1] = line end
  end
  return lines
end

function setup(thread)
  -- A distinct seed per thread, so the threads do not all walk the same offsets.
  thread_count = (thread_count or 0) + 1
  thread:set("seed", os.time() * 1000 + thread_count)
end

function init(args)
  math.randomseed(seed or os.time())
  for _, arg in ipairs(args) do
    local key, value = arg:match("^(%w+)=(.*)$")
    if key == "size" then size = tonumber(value)
    elseif key == "block" then block = tonumber(value)
    elseif key == "extents" then
      starts, cumulative = {}, {}
      for _, line in ipairs(read_lines(value)) do
        local s, l = line:match("^(%d+)%s+(%d+)")
        starts[#starts + 1] = tonumber(s)
        total = total + math.floor(tonumber(l) / block)
        cumulative[#cumulative + 1] = total
      end
    elseif key == "paths" then paths = read_lines(value)
    end
  end
  if size <= 0 and not starts then error("random-range.lua: size=BYTES or extents=FILE is required") end
end

-- Offset of the n-th block (0-based) of the extent list: binary search over cumulative counts.
local function extent_offset(n)
  local lo, hi = 1, #cumulative
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cumulative[mid] > n then hi = mid else lo = mid + 1 end
  end
  local before = lo > 1 and cumulative[lo - 1] or 0
  return starts[lo] + (n - before) * block
end

function request()
  local offset
  if starts then
    offset = extent_offset(math.random(0, total - 1))
  else
    offset = math.random(0, math.floor(size / block) - 1) * block
  end
  local path = paths and paths[math.random(1, #paths)] or nil
  -- %d would wrap past 2^31 in some Lua builds; offsets of a 1 TiB disk need 41 bits.
  local range = string.format("bytes=%.0f-%.0f", offset, offset + block - 1)
  return wrk.format("GET", path, { Range = range })
end
