# mirai_map(): mapping over vectors, lists, data frames and matrices; collection

test_that("mirai_map() over a vector and a list gives the sequential results", {
  daemons(2)
  withr::defer(daemons(0))
  mp <- mirai_map(1:5, function(x) x^2)
  expect_s3_class(mp, "mirai_map")
  expect_length(mp, 5L)
  expect_true(all(vapply(mp, is_mirai, logical(1L))))
  expect_identical(mp[], lapply(1:5, function(x) x^2))
  expect_output(print(mp), "< mirai map \\[5/5\\] >")

  x <- list(a = 1:3, b = letters, c = NULL)
  expect_identical(mirai_map(x, length)[], lapply(x, length))
  expect_identical(mirai_map(c(a = 1, b = 2), function(x) x + 1)[.flat], c(a = 2, b = 3))
  expect_identical(mirai_map(character(), nchar)[], list())
})

test_that("mirai_map() over a data frame passes its columns as arguments", {
  daemons(2)
  withr::defer(daemons(0))
  df <- data.frame(a = 1:3, b = c("x", "y", "z"), c = c(TRUE, FALSE, TRUE),
                   stringsAsFactors = FALSE)
  f <- function(c, a, b) sprintf("%s%d%s", b, a, if (c) "!" else "")
  expected <- lapply(seq_len(nrow(df)), function(i) f(a = df$a[i], b = df$b[i], c = df$c[i]))
  expect_identical(mirai_map(df, f)[], expected)
  expect_identical(mirai_map(df, f)[.flat], unlist(expected))
  rownames(df) <- c("r1", "r2", "r3")
  expect_identical(names(mirai_map(df, f)[]), c("r1", "r2", "r3"))
})

test_that("mirai_map() over a matrix maps its rows, by column name or position", {
  daemons(2)
  withr::defer(daemons(0))
  m <- matrix(1:6, nrow = 3, dimnames = list(NULL, c("x", "y")))
  expect_identical(mirai_map(m, function(y, x) x * 10L + y)[.flat], c(14L, 25L, 36L))
  unnamed <- matrix(1:6, nrow = 3)
  expect_identical(mirai_map(unnamed, function(a, b) a - b)[.flat], c(-3L, -3L, -3L))
})

test_that("'...' go to the daemons' global environment, '.args' to '.f'", {
  daemons(2)
  withr::defer(daemons(0))
  helper <- function(x) x * 100
  out <- mirai_map(1:3, function(x, y, z) helper(x) + y + z, helper = helper,
                   .args = list(z = 1, y = 2))[.flat]
  expect_identical(out, c(103, 203, 303))
  expect_identical(mirai_map(1:2, function(x, y) x + y, .args = list(5))[.flat], c(6, 7))
})

test_that(".flat combines the results as unlist() does, after checking them in order", {
  daemons(1)
  withr::defer(daemons(0))
  expect_snapshot(error = TRUE, mirai_map(1:2, function(x) if (x == 1) 1 else "a")[.flat])
  expect_snapshot(error = TRUE, mirai_map(c(a = 1, b = 2), function(x) stop("no ", x))[.flat])
  expect_snapshot(error = TRUE, mirai_map(1:2, function(x) if (x == 2) stop("no ", x) else x)[.flat])
  # results of any length are concatenated, lists flattened one level
  expect_identical(mirai_map(1:3, function(x) c(x, x))[.flat], c(1L, 1L, 2L, 2L, 3L, 3L))
  expect_identical(mirai_map(1:2, function(x) seq_len(x))[.flat], c(1L, 1L, 2L))
  expect_identical(mirai_map(1:2, function(x) list(a = x))[.flat], list(a = 1L, a = 2L))
  # classes are dropped, as unlist() does (factors combine into a factor)
  dates <- mirai_map(1:2, function(x) as.Date("2024-01-01") + x)[.flat]
  expect_identical(dates, unclass(as.Date(c("2024-01-02", "2024-01-03"))))
  expect_identical(mirai_map(1:2, function(x) factor(c("a", "b")[x]))[.flat],
                   factor(c("a", "b")))
  # a failing check cancels the tasks still in progress
  mp <- mirai_map(1:4, function(x) {
    if (x == 1) return("one")
    Sys.sleep(if (x == 2) 0 else 10)
    x
  })
  expect_error(mp[.flat], "differing type")
  expect_identical(unclass(mp[[4L]][]), 20L)
})

test_that("mirai_map() over a data frame keeps the classes of its columns", {
  daemons(1)
  withr::defer(daemons(0))
  df <- data.frame(d = as.Date(c("2024-01-01", "2024-06-30")), f = factor(c("u", "v")),
                   t = as.POSIXct(c("2024-01-01 10:00", "2024-01-02 11:00"), tz = "UTC"),
                   n = c(1.5, 2.5))
  classes <- mirai_map(df, function(d, f, t, n) c(class(d), class(f), class(t)[1L], class(n)))[]
  expect_identical(classes, rep(list(c("Date", "factor", "POSIXct", "numeric")), 2L))
  expect_identical(mirai_map(df, function(d, ...) format(d + 1))[.flat],
                   c("2024-01-02", "2024-07-01"))
  expect_identical(mirai_map(as.Date("2024-01-01") + 0:1, function(x) class(x))[.flat],
                   c("Date", "Date"))
})

test_that("errors without .stop come back in their place", {
  daemons(1)
  withr::defer(daemons(0))
  out <- mirai_map(1:3, function(x) if (x == 2) stop("boom") else x)[]
  expect_identical(out[c(1L, 3L)], list(1L, 3L))
  expect_true(is_mirai_error(out[[2L]]))
})

test_that(".progress shows a progress bar and returns the results", {
  daemons(2)
  withr::defer(daemons(0))
  withr::local_options(cli.progress_show_after = 0, cli.dynamic = FALSE)
  mp <- mirai_map(1:4, function(x) { Sys.sleep(0.1); x })
  msgs <- character()
  out <- withCallingHandlers(
    mp[.progress],
    message = function(m) {
      msgs <<- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  )
  expect_identical(out, as.list(1:4))
  expect_true(length(msgs) > 0L)
  expect_match(paste(msgs, collapse = ""), "4/4|100%")
  expect_identical(collect_mirai(mirai_map(1:2, identity), c(".progress", ".flat")), 1:2)
})

test_that(".stop raises the first error with its element and cancels the rest", {
  need_binding("wrap__task_cancel")
  daemons(2)
  withr::defer(daemons(0))
  mp <- mirai_map(1:6, function(x) {
    if (x == 2) stop("failed on two")
    Sys.sleep(10)
    x
  })
  expect_snapshot(error = TRUE, mp[.stop, .progress])
  values <- lapply(unclass(mp)[-2L], function(m) m[])
  expect_true(all(vapply(values, function(v) identical(unclass(v), 20L), logical(1L))))
  expect_identical(mirai(1 + 1)[], 2)
})

test_that(".stop also raises without cancellation, and collect_mirai() takes options", {
  daemons(1)
  withr::defer(daemons(0))
  mp <- mirai_map(1:3, function(x) if (x == 3) stop("third") else x)
  expect_error(collect_mirai(mp, ".stop"), "mirai_map\\(\\) element 3 failed: .*third")
  expect_identical(collect_mirai(mirai_map(1:3, function(x) x), ".flat"), 1:3)
  expect_identical(collect_mirai(list(mirai(1), mirai(2)), c(".stop", ".flat")), c(1, 2))
  opts <- ".flat"
  expect_identical(mirai_map(1:2, identity)[opts], 1:2)
})

test_that("the options are exported, and collect_mirai() takes them by name too", {
  daemons(1)
  withr::defer(daemons(0))
  mp <- mirai_map(1:3, function(x) x * 2L)
  expect_identical(mp[mirai::.flat], c(2L, 4L, 6L))
  expect_identical(mp[mirai::.stop, mirai::.flat], c(2L, 4L, 6L))
  expect_identical(c(.flat, .stop), c(".flat", ".stop"))
  expect_identical(mp[c(.flat, .stop)], c(2L, 4L, 6L))
  expect_identical(collect_mirai(mp, list(.flat = TRUE)), c(2L, 4L, 6L))
  expect_identical(collect_mirai(mp, c(.stop = TRUE, .flat = TRUE)), c(2L, 4L, 6L))
  # cli draws a bar only once its ticker says a redraw is due: every 3 s in
  # a session that was not interactive when cli loaded (CLI_TICK_TIME),
  # and a bar drawn by an earlier test cleared it. A due redraw stays due
  # until a bar is drawn, so wait one tick: this bar is then drawn at its
  # first update, whatever ran before.
  withr::local_options(cli.progress_show_after = 0, cli.dynamic = TRUE)
  Sys.sleep(as.numeric(Sys.getenv("CLI_TICK_TIME", "3000")) / 1000 + 0.1)
  msgs <- character()
  out <- withCallingHandlers(
    collect_mirai(mirai_map(1:3, function(x) { Sys.sleep(0.1); x * 2L }),
                  list(.flat = TRUE, .progress = "my bar")),
    message = function(m) {
      msgs <<- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  )
  expect_identical(out, c(2L, 4L, 6L))
  expect_match(paste(msgs, collapse = ""), "my bar")
  expect_snapshot(error = TRUE, collect_mirai(mp, list(.bogus = TRUE)))
  # a single mirai ignores the options
  expect_identical(collect_mirai(mirai(1), ".flat"), 1)
})

test_that(".promise attaches handlers to each mirai's promise", {
  daemons(1)
  withr::defer(daemons(0))
  seen <- integer()
  mp <- mirai_map(1:3, function(x) x * 2L, .promise = function(v) seen <<- c(seen, v))
  expect_identical(mp[.flat], c(2L, 4L, 6L))
  expect_true(run_later_until(function() length(seen) == 3L))
  expect_identical(sort(seen), c(2L, 4L, 6L))
  rejected <- 0L
  mp <- mirai_map(1:2, function(x) stop("x"),
                  .promise = list(function(v) NULL, function(e) rejected <<- rejected + 1L))
  mp[]
  expect_true(run_later_until(function() rejected == 2L))
})

test_that("bad input to mirai_map() is an error naming the argument", {
  expect_snapshot(error = TRUE, mirai_map(1:3, function(x) x))
  daemons(1)
  withr::defer(daemons(0))
  expect_snapshot(error = TRUE, mirai_map(1:3, 1))
  expect_snapshot(error = TRUE, mirai_map(NULL, identity))
  expect_snapshot(error = TRUE, mirai_map(quote(a), identity))
  expect_snapshot(error = TRUE, mirai_map(1:3, identity, 1))
  expect_snapshot(error = TRUE, mirai_map(1:3, identity, .args = 1))
  expect_snapshot(error = TRUE, mirai_map(1:3, identity, .promise = 1))
  expect_snapshot(error = TRUE, mirai_map(1:3, identity, .compute = 1))
  mp <- mirai_map(1:3, identity)
  expect_snapshot(error = TRUE, mp[.bogus])
  expect_snapshot(error = TRUE, collect_mirai(mp, "flat"))
})
