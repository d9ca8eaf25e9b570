# compute profiles: status(), info(), daemons_set(), require_daemons(),
# with_daemons() and local_daemons()

test_that("info(), daemons_set() and require_daemons() describe a profile", {
  expect_null(info(.compute = "none"))
  expect_false(daemons_set(.compute = "none"))
  daemons(2, .compute = "info")
  withr::defer(daemons(0, .compute = "info"))
  expect_true(daemons_set("info"))
  expect_true(require_daemons("info"))
  collect_mirai(lapply(1:3, function(i) mirai(i, .compute = "info")))
  i <- info("info")
  expect_type(i, "integer")
  expect_identical(names(i), c("connections", "cumulative", "awaiting", "executing", "completed"))
  expect_identical(i[["connections"]], 2L)
  expect_identical(i[["cumulative"]], 2L)
  expect_identical(i[["completed"]], 3L)
})

test_that("require_daemons() names the calling function, or the call given", {
  f <- function() require_daemons(.compute = "none", call = environment())
  expect_snapshot(error = TRUE, f())
  expect_snapshot(error = TRUE, require_daemons())
  expect_error(require_daemons("none", call = quote(g(x))), class = "simpleError")
  e <- tryCatch(f(), error = identity)
  expect_identical(conditionCall(e), quote(f()))
})

test_that("with_daemons() and local_daemons() change the default profile for a while", {
  daemons(1, .compute = "wd")
  withr::defer(daemons(0, .compute = "wd"))
  pid <- mirai(Sys.getpid(), .compute = "wd")[]
  expect_false(daemons_set())
  expect_identical(with_daemons("wd", mirai(Sys.getpid())[]), pid)
  expect_identical(with_daemons("wd", unname(info()[["connections"]])), 1L)
  expect_identical(with_daemons("wd", status()$connections), 1L)
  expect_identical(with_daemons("wd", mirai_map(1:2, function(x) Sys.getpid())[.flat]),
                   c(pid, pid))
  expect_false(daemons_set())
  # an explicit profile still wins, and the default comes back after an error
  expect_false(with_daemons("wd", daemons_set("default")))
  expect_error(with_daemons("wd", stop("oops")), "oops")
  expect_false(daemons_set())

  f <- function() {
    local_daemons("wd")
    list(daemons_set(), mirai(Sys.getpid())[])
  }
  expect_identical(f(), list(TRUE, pid))
  expect_false(daemons_set())

  # daemons() itself follows the default profile
  withr::defer(daemons(0, .compute = "wd2"))
  with_daemons("wd2", {
    daemons(1)
    expect_true(daemons_set("wd2"))
    expect_identical(status()$connections, 1L)
    daemons(0)
  })
  expect_false(daemons_set("wd2"))
})

test_that("bad input to the profile helpers is an error naming the argument", {
  expect_snapshot(error = TRUE, info(1))
  expect_snapshot(error = TRUE, daemons_set(NA_character_))
  expect_snapshot(error = TRUE, with_daemons(1, 2))
  expect_snapshot(error = TRUE, local_daemons(""))
  expect_snapshot(error = TRUE, local_daemons("x", frame = 1))
  expect_snapshot(error = TRUE, status(.compute = 1))
})

test_that("info() has cumulative NA without dispatcher; nextget('url') the URL to dial", {
  daemons(1, dispatcher = FALSE, .compute = "direct")
  withr::defer(daemons(0, .compute = "direct"))
  i <- info("direct")
  expect_identical(i[["cumulative"]], NA_integer_)
  expect_identical(i[["connections"]], 1L)
  expect_type(i, "integer")
  expect_identical(nextget("url", .compute = "direct"), status("direct")$daemons)
  daemons(2, url = "tcp://127.0.0.1:0", .compute = "two")
  withr::defer(daemons(0, .compute = "two"))
  expect_identical(nextget("url", .compute = "two"), nextget("urls", .compute = "two")[1L])
  expect_match(nextget("url", .compute = "two"), "^tcp://127\\.0\\.0\\.1:[1-9][0-9]*$")
})
