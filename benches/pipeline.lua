-- wrk script: HTTP/1.1 pipelining, DEPTH requests per write.
--
--   wrk -t1 -c16 -d5s -s benches/pipeline.lua http://127.0.0.1:3000 -- /me 16 'Bearer Atza|...'
--
-- Arguments after `--`: the path (default /), the depth (default 16), and optionally the value
-- of an Authorization header. wrk counts every response, so its requests/sec is per request,
-- not per batch.

local req

init = function(args)
   local path = args[1] or "/"
   local depth = tonumber(args[2] or "16")
   local headers = {}
   for name, value in pairs(wrk.headers) do
      headers[name] = value
   end
   if args[3] and args[3] ~= "" then
      headers["Authorization"] = args[3]
   end
   local batch = {}
   for i = 1, depth do
      batch[i] = wrk.format("GET", path, headers)
   end
   req = table.concat(batch)
end

request = function()
   return req
end
