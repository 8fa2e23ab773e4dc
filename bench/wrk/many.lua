-- POST an increment to a random counter among 100,000 names.
wrk.method = "POST"
request = function()
  return wrk.format(nil, "/counter/obj" .. math.random(0, 99999) .. "/increment")
end
