-- wrk script for benches/e2e_pair.rs: DEPTH identical requests per write (HTTP/1.1
-- pipelining; DEPTH 1 is plain keep-alive), byte for byte the same whatever port wrk targets.
--
--   wrk -t1 -c16 -d5s -s benches/e2e_pair.lua http://127.0.0.1:PORT -- /x 16 'Bearer Atza|...'
--
-- Arguments after `--`: the path, the depth, and the value of the Authorization header. The
-- Host header is fixed (`bench`) rather than wrk's `127.0.0.1:PORT`, so the two servers of the
-- pair receive the same bytes. No `response` hook: parsing every response in Lua would make wrk,
-- not the server, the bottleneck; wrk's own "Non-2xx or 3xx responses" count and the server's
-- counters check the answers instead. `init` prints the request to stderr (`REQUEST <length> <bytes, CR LF escaped>`) so the
-- bench can check that every run sent the same bytes.

local req

init = function(args)
   local path = args[1] or "/x"
   local depth = tonumber(args[2] or "16")
   -- Written out rather than with wrk.format: the order of a Lua table's keys, and so of
   -- wrk.format's headers, differs between wrk runs.
   local one = "GET " .. path .. " HTTP/1.1\r\nHost: bench\r\n"
   if args[3] and args[3] ~= "" then
      one = one .. "Authorization: " .. args[3] .. "\r\n"
   end
   one = one .. "\r\n"
   local batch = {}
   for i = 1, depth do
      batch[i] = one
   end
   req = table.concat(batch)
   -- The parent checks that every run sent the same request bytes.
   local shown = batch[1]:gsub("\r", "\\r"):gsub("\n", "\\n")
   io.stderr:write("REQUEST " .. #batch[1] .. " " .. shown .. "\n")
end

request = function()
   return req
end
