# The CIS root-usage alarm: any call made as the root user (a console
# sign-in, root access keys, or a brokered AssumeRoot session) that is not
# AWS acting on its own, counted from the trail's log group. A break-glass
# use fires it too, and should: the root user is never used unannounced.

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.audit.arn
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count     = var.alarm_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_cloudwatch_log_metric_filter" "root_usage" {
  name           = "${var.name}-root-usage"
  log_group_name = aws_cloudwatch_log_group.trail.name
  pattern        = "{ $.userIdentity.type = \"Root\" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != \"AwsServiceEvent\" }"

  metric_transformation {
    name      = "RootAccountUsage"
    namespace = var.metric_namespace
    value     = "1"
  }
}

resource "aws_cloudwatch_metric_alarm" "root_usage" {
  alarm_name          = "${var.name}-root-usage"
  alarm_description   = "The root user of account ${local.account_id} was used (CIS root-usage filter on ${aws_cloudwatch_log_group.trail.name})."
  namespace           = var.metric_namespace
  metric_name         = aws_cloudwatch_log_metric_filter.root_usage.metric_transformation[0].name
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  # No root call in a period writes no data point: that is the good case.
  treat_missing_data = "notBreaching"
  actions_enabled    = true
  alarm_actions      = [aws_sns_topic.alarms.arn]
  tags               = var.tags
}
