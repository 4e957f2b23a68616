-- wrk script: random 4 KiB-aligned PUTs of 4 KiB, the imageio way.
--
--   wrk ... -s random-put.lua http://HOST/images/NAME/data?flush=n -- size=BYTES [block=4096]
--
-- Each request writes `block` bytes at a random block-aligned offset in [0, size), saying where
-- with Content-Range: bytes a-b/*. The body is random bytes made once per thread (its content
-- does not matter to the server; making it per request would only load the client).
-- No response() hook (see random-range.lua); failures show as "Non-2xx or 3xx responses".

local size, block = 0, 4096
local body

function setup(thread)
  thread_count = (thread_count or 0) + 1
  thread:set("seed", os.time() * 1000 + thread_count)
end

function init(args)
  math.randomseed(seed or os.time())
  for _, arg in ipairs(args) do
    local key, value = arg:match("^(%w+)=(.*)$")
    if key == "size" then size = tonumber(value)
    elseif key == "block" then block = tonumber(value)
    end
  end
  if size <= 0 then error("random-put.lua: size=BYTES is required") end
  local bytes = {}
  for i = 1, block do bytes[i] = string.char(math.random(0, 255)) end
  body = table.concat(bytes)
end

function request()
  local offset = math.random(0, math.floor(size / block) - 1) * block
  local range = string.format("bytes %.0f-%.0f/*", offset, offset + block - 1)
  return wrk.format("PUT", nil, {
    ["Content-Range"] = range,
    ["Content-Type"] = "application/octet-stream",
  }, body)
end
